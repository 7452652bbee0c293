package client

import "io"

// Storage is where a device keeps its state: the vault (vault.go) seals
// everything it stores, so a Storage holds only ciphertext, a key file and
// the plaintext overdue-wipe hint, under names that say nothing about the
// content. DirStorage keeps them in a directory; MemStorage in memory (the
// base of a browser's IndexedDB storage). Every implementation must pass
// the suite of package anom/client/storagetest.
//
// Objects and logs share one flat namespace of names made of ASCII
// letters, digits, '-' and '_' (at most 255 bytes): a log is an object
// that grows by AppendLog. A missing object is an error matching
// fs.ErrNotExist.
//
// A Client calls a Storage from one goroutine at a time; implementations
// need not be safe for concurrent use.
type Storage interface {
	// Create makes the storage's container (a directory) if it does not
	// exist yet. Lock and the rest may fail on a storage never created.
	Create() error
	// Lock takes the storage for this process: while it is held, Lock of
	// any other handle to the same state fails at once with an error
	// matching ErrInUse (two processes on one device would lose
	// messages). A storage that was never created gives an error matching
	// fs.ErrNotExist.
	Lock() error
	// Unlock releases what Lock took; it may be called when not locked.
	Unlock() error

	// Get returns the content of an object.
	Get(name string) ([]byte, error)
	// Put replaces an object, creating it if needed, atomically and
	// durably: after a crash the object has either its old content or
	// data, and once Put returns it has data.
	Put(name string, data []byte) error
	// PutSecret is Put for an object holding key material: the bytes it
	// replaces are also destroyed as far as the medium allows (they are
	// overwritten, after data is durably in place).
	PutSecret(name string, data []byte) error
	// Delete removes an object durably; a missing one is not an error.
	Delete(name string) error
	// List returns the names of all objects, sorted.
	List() ([]string, error)

	// OpenLog returns a reader of a log's content and its size.
	OpenLog(name string) (io.ReadCloser, int64, error)
	// AppendLog makes a log's content its first at bytes (zeros where it
	// is shorter) followed by data, and makes it durable before
	// returning; a missing log is created. The vault passes as at the
	// size of the log's whole frames, so a frame torn by a crash is
	// dropped by the next append.
	AppendLog(name string, at int64, data []byte) error

	// Shred destroys an object holding key material: its bytes are
	// overwritten as far as the medium allows, then it is removed,
	// durably. A missing object gives an error matching fs.ErrNotExist.
	Shred(name string) error
	// Destroy removes every object and the container and returns how
	// many objects it removed. The wipe shreds the key file first, so
	// what Destroy removes is already ciphertext under a lost key (a
	// crypto-erase).
	Destroy() (int, error)
}

// validStorageName reports whether name is one a Storage must accept.
func validStorageName(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
