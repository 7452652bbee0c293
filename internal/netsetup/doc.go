// Package netsetup is an anom network's data directory on disk: its
// layout (Dir, and the root and administrator folders beside it), the
// network description (network.json), the TLS material, and the server's
// online keys certified by the root. The anom command's server, admin,
// archive and bench commands open a network through it.
package netsetup
