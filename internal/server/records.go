package server

import (
	"encoding/json"
	"fmt"

	"anom/internal/store"
)

// Buckets and logs of the store. Records are JSON: they are written only by
// the server itself.
const (
	bucketDevices      = "devices"      // device hex -> deviceRecord
	bucketUsers        = "users"        // username -> userRecord
	bucketCodes        = "codes"        // code hash hex -> codeRecord
	bucketUsedCodes    = "codes-used"   // code hash hex -> usedCodeRecord: a tombstone, kept for good, so a re-imported batch never revives the code
	bucketAdminNonces  = "admin-nonces" // issued-at ms (20 digits) "." nonce hex -> {}: admin requests seen, until outside the window
	bucketAdminKeys    = "admin-keys"   // admin name -> adminKeyRecord: the newest admin key certificate seen of the name
	bucketDistributors = "distributors" // name -> distributorRecord
	bucketPending      = "pending"      // device hex -> {} (certificate not yet in the log)
	bucketRevoked      = "revoked"      // device hex -> encoded identity.Revocation
	bucketKeyPackages  = "kp"           // device hex "." random hex -> key package
	bucketLastResort   = "kplr"         // device hex -> key package
	bucketGroups       = "groups"       // group hex -> groupRecord
	bucketMembers      = "members"      // device hex "." group hex -> memberRecord
	bucketWipes        = "wipes"        // device hex -> encoded identity.WipeCommand
	bucketWiped        = "wiped"        // device hex -> {} (the device confirmed a wipe command; it is revoked too)
	bucketLeaving      = "leaving"      // group hex "." device hex -> memberRecord (removed, may still read)
	bucketTimers       = "timers"       // group hex -> timerRecord (the timer history)
	bucketKept         = "kept"         // group hex "." seq (20 digits) -> GroupMessage of a message that must stay when the timer trims the log before it
	bucketApprovals    = "approvals"    // key hex -> encoded identity.DeviceApproval, until used or expired
	bucketKeys         = "keys"         // signature key hex -> device hex (a key certifies one device)
	bucketAnnounce     = "announce"     // device hex -> {} (a further device not yet announced to its user's devices)

	logTranslog = "translog"
	logAdmin    = "admin" // one adminLogEntry per authenticated admin request
	groupLogPre = "g."
	// commitLogPre names a group's commit log: one entry (the commit's
	// sequence in the group log) per commit, appended atomically with it.
	// A writer whose append lost to another server's learns from its last
	// sequence alone whether a commit came in between (grouplog.go).
	commitLogPre = "gc."
)

type deviceRecord struct {
	Cert     []byte `json:"cert"`
	LogIndex uint64 `json:"log_index"`
	Logged   bool   `json:"logged"`
	// Approval is the encoded identity.DeviceApproval of a further device
	// of a user, logged just before the certificate.
	Approval []byte `json:"approval,omitempty"`
}

type userRecord struct {
	Devices []string `json:"devices"`
}

type codeRecord struct {
	Distributor string `json:"distributor"`
	Months      int    `json:"months"`
	Expires     int64  `json:"expires"` // Unix seconds
}

type usedCodeRecord struct {
	Device string `json:"device"`
	At     int64  `json:"at"` // Unix seconds
}

type distributorRecord struct {
	Cert   []byte `json:"cert"`
	Issued uint32 `json:"issued"`
}

type groupRecord struct {
	Epoch uint64 `json:"epoch"`
	// Leaves holds the device (hex) at each leaf index, "" for blank.
	Leaves []string `json:"leaves"`
	// Applied is the last log sequence reflected in this record.
	Applied uint64 `json:"applied"`
}

type memberRecord struct {
	Joined uint64 `json:"joined"`
	// Removed, if not 0, is the sequence of the commit that removed the
	// device: it may read up to it, then the record goes.
	Removed uint64 `json:"removed,omitempty"`
}

func encodeRecord(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("server: encoding record: " + err.Error()) // only plain structs are encoded
	}
	return b
}

func decodeRecord(e store.Entry, v any) error {
	if err := json.Unmarshal(e.Value, v); err != nil {
		return fmt.Errorf("decoding %s/%s: %w: %w", e.Bucket, e.Key, store.ErrCorrupt, err)
	}
	return nil
}
