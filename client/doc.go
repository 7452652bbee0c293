// Package client is the device side of anom: the device's state encrypted
// at rest under a key derived from the user's PIN, the application content
// carried inside MLS messages, attachments encrypted on the device, safety
// numbers and the membership view of a group.
//
// Everything the device stores lives in one directory (Config.Dir). Its keys
// are wrapped under an Argon2id key derived from the PIN; entering the duress
// PIN, going too long without reaching the server, or a root-signed remote
// wipe deletes the keys and the data at once.
package client
