package main

import (
	"errors"
	"fmt"

	"anom/client"
)

// errBadInvite marks an invite that does not parse (code bad-invite).
var errBadInvite = errors.New("the invite does not parse")

// parseInvite reads an invite with the library's parser.
func parseInvite(s string) (client.Network, error) {
	n, err := client.ParseInvite(s)
	if err != nil {
		return client.Network{}, fmt.Errorf("%w: %w", errBadInvite, err)
	}
	return n, nil
}

// inviteString makes the invite of network n (the inverse of parseInvite).
func inviteString(n client.Network) string { return n.Invite() }
