// Package client is the device side of anom: the device's state encrypted
// at rest under a key derived from the user's PIN, the application content
// carried inside MLS messages, attachments encrypted on the device, safety
// numbers and the membership view of a group.
//
// Everything the device stores lives in one directory (Config.Dir), sealed
// under a data key that exists on disk only in the key file, wrapped under
// an Argon2id key derived from the PIN. Too many wrong PINs, going too long
// without reaching the server, a root-signed remote wipe or the duress PIN
// destroy that file first (a crypto-erase), then the rest; the duress PIN
// then opens a new, empty device as if it were the PIN.
package client
