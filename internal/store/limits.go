package store

import "fmt"

// Limits every backend enforces, so that data written to one backend fits
// any other (JetStream's default maximum message is 1 MiB).
const (
	MaxBucketLen   = 64
	MaxKeyLen      = 512            // bytes of a key, log, consumer or blob name
	MaxValueSize   = 1<<20 - 8<<10  // bytes of one KV value or log entry
	MaxTxnOps      = 64             // operations of a Txn, or logs of an AppendAll
	MaxTxnBytes    = 8 << 20        // total value bytes of a Txn or AppendAll
	MaxListLimit   = 1000           // entries of one List or ListLogs page
	MaxReadEntries = 1000           // entries of one Read
	MaxReadBytes   = 4 << 20        // bytes after which Read stops early
	MinBlobLimit   = 100 << 20      // every backend accepts blobs this large
	MaxAppendCount = MaxReadEntries // entries of one log in one append
)

// CheckBucket reports whether name is a valid bucket name.
func CheckBucket(name string) error {
	if name == "" || len(name) > MaxBucketLen {
		return fmt.Errorf("checking bucket name %q: length must be 1..%d: %w", name, MaxBucketLen, ErrInvalid)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(isAlnum(c) || c == '_' || c == '-') {
			return fmt.Errorf("checking bucket name %q: byte %d is not [A-Za-z0-9_-]: %w", name, i, ErrInvalid)
		}
	}
	return nil
}

// CheckName reports whether name is a valid key, log, consumer or blob name.
func CheckName(what, name string) error {
	if name == "" {
		return fmt.Errorf("checking %s name: empty: %w", what, ErrInvalid)
	}
	if len(name) > MaxKeyLen {
		return fmt.Errorf("checking %s name: %d bytes, limit %d: %w", what, len(name), MaxKeyLen, ErrTooLarge)
	}
	if name[0] == '.' || name[len(name)-1] == '.' {
		return fmt.Errorf("checking %s name %q: starts or ends with '.': %w", what, name, ErrInvalid)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(isAlnum(c) || c == '_' || c == '-' || c == '=' || c == '/' || c == '.') {
			return fmt.Errorf("checking %s name %q: byte %d is not [A-Za-z0-9_=./-]: %w", what, name, i, ErrInvalid)
		}
		if c == '.' && name[i-1] == '.' {
			return fmt.Errorf("checking %s name %q: contains \"..\": %w", what, name, ErrInvalid)
		}
	}
	return nil
}

// checkPrefix accepts "" or any prefix of a valid name (which may end with '.').
func checkPrefix(what, prefix string) error {
	if prefix == "" {
		return nil
	}
	probe := prefix
	if probe[len(probe)-1] == '.' {
		probe += "x"
	}
	if err := CheckName(what, probe); err != nil {
		return fmt.Errorf("checking %s prefix: %w", what, err)
	}
	return nil
}

// CheckList validates list options and returns the effective limit.
func CheckList(what string, o ListOptions) (int, error) {
	if err := checkPrefix(what, o.Prefix); err != nil {
		return 0, err
	}
	if o.After != "" {
		if err := CheckName(what, o.After); err != nil {
			return 0, fmt.Errorf("checking list start: %w", err)
		}
	}
	if o.Limit < 0 {
		return 0, fmt.Errorf("checking list limit %d: %w", o.Limit, ErrInvalid)
	}
	if o.Limit == 0 || o.Limit > MaxListLimit {
		return MaxListLimit, nil
	}
	return o.Limit, nil
}

// CheckValue reports whether a value or log entry fits MaxValueSize.
func CheckValue(what string, v []byte) error {
	if len(v) > MaxValueSize {
		return fmt.Errorf("checking %s: %d bytes, limit %d: %w", what, len(v), MaxValueSize, ErrTooLarge)
	}
	return nil
}

// CheckOps validates the operations of a transaction.
func CheckOps(ops []Op) error {
	if len(ops) == 0 {
		return fmt.Errorf("checking transaction: no operations: %w", ErrInvalid)
	}
	if len(ops) > MaxTxnOps {
		return fmt.Errorf("checking transaction: %d operations, limit %d: %w", len(ops), MaxTxnOps, ErrTooLarge)
	}
	seen := make(map[[2]string]bool, len(ops))
	total := 0
	for i, op := range ops {
		if err := checkOp(op); err != nil {
			return &TxnError{Index: i, Op: op, Err: err}
		}
		k := [2]string{op.Bucket, op.Key}
		if seen[k] {
			return &TxnError{Index: i, Op: op, Err: fmt.Errorf("key appears twice in one transaction: %w", ErrInvalid)}
		}
		seen[k] = true
		total += len(op.Value)
	}
	if total > MaxTxnBytes {
		return fmt.Errorf("checking transaction: %d value bytes, limit %d: %w", total, MaxTxnBytes, ErrTooLarge)
	}
	return nil
}

func checkOp(op Op) error {
	if err := CheckBucket(op.Bucket); err != nil {
		return err
	}
	if err := CheckName("key", op.Key); err != nil {
		return err
	}
	if err := CheckValue("value", op.Value); err != nil {
		return err
	}
	switch op.Kind {
	case OpPut, OpCreate, OpDelete, OpCheck:
	case OpUpdate:
		if op.Rev == 0 {
			return fmt.Errorf("checking update: revision 0: %w", ErrInvalid)
		}
	default:
		return fmt.Errorf("checking operation kind %d: %w", op.Kind, ErrInvalid)
	}
	if (op.Kind == OpDelete || op.Kind == OpCheck) && op.Value != nil {
		return fmt.Errorf("checking %s: has a value: %w", op.Kind, ErrInvalid)
	}
	return nil
}

// CheckAppends validates the appends of AppendAll.
func CheckAppends(appends []Append) error {
	if len(appends) == 0 {
		return fmt.Errorf("checking appends: no logs: %w", ErrInvalid)
	}
	if len(appends) > MaxTxnOps {
		return fmt.Errorf("checking appends: %d logs, limit %d: %w", len(appends), MaxTxnOps, ErrTooLarge)
	}
	seen := make(map[string]bool, len(appends))
	total := 0
	for _, a := range appends {
		if err := CheckName("log", a.Log); err != nil {
			return err
		}
		if seen[a.Log] {
			return fmt.Errorf("checking appends: log %q appears twice: %w", a.Log, ErrInvalid)
		}
		seen[a.Log] = true
		if len(a.Entries) == 0 {
			return fmt.Errorf("checking append to %q: no entries: %w", a.Log, ErrInvalid)
		}
		if len(a.Entries) > MaxAppendCount {
			return fmt.Errorf("checking append to %q: %d entries, limit %d: %w", a.Log, len(a.Entries), MaxAppendCount, ErrTooLarge)
		}
		for _, e := range a.Entries {
			if err := CheckValue("log entry", e); err != nil {
				return err
			}
			total += len(e)
		}
	}
	if total > MaxTxnBytes {
		return fmt.Errorf("checking appends: %d bytes, limit %d: %w", total, MaxTxnBytes, ErrTooLarge)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
