// Package idbstorage is the client.Storage of a browser: the device state
// in IndexedDB, for the GOOS=js build of the client (the web app).
//
// It stores what the vault gives it, which is ciphertext under the PIN's
// key, a key file and the plaintext overdue-wipe hint (see client.Storage),
// in one IndexedDB database per device. An object is a record of its chunk
// sizes in the store "meta" and its bytes in chunks in the store "chunks",
// so that appending to a log (the message history) writes only the new
// frame. Every write is one IndexedDB transaction committed with strict
// durability before the call returns: an object has either its old content
// or its new one, after a crash of the page or the browser.
//
// The lock is an exclusive Web Lock (navigator.locks) named after the
// database: a second tab of the app, or a second handle in one page, gets
// client.ErrInUse at once, and the browser drops the lock when the page
// that held it goes away however it ends.
//
// Wipe: the vault shreds the key file first (Shred overwrites its record
// with random bytes in a committed transaction, then deletes it), then
// Destroy clears every store. What is left is ciphertext under a key that
// no longer exists. Like a flash disk, the browser's IndexedDB backend
// (LevelDB in Chromium, SQLite in Firefox and Safari) may keep old values
// on disk until it compacts them: overwriting is best effort, which is why
// the key file is small and nothing else holds a key.
//
// The package has code only when GOOS=js; its tests run the storage
// conformance suite (anom/client/storagetest) in headless Chromium.
package idbstorage
