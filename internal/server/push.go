package server

import "anom/internal/wire"

// pushFrame encodes the push of a new group message (wire.PushFrame, the
// codec the load generator reads pushes with): a Frame with
// push_messages holding the group message whose encoding without
// sequence and time is stored (as appendGroup encodes it), with seq and
// timeMs added, and last = seq. It is built once per message and shared
// by every recipient.
func pushFrame(groupID, stored []byte, seq uint64, timeMs int64) []byte {
	return wire.PushFrame(groupID, stored, seq, timeMs)
}
