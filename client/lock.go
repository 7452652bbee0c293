package client

import (
	"errors"
)

// lockFileName is the file of the device directory that the process using
// the device holds an exclusive OS lock on. It holds nothing; the lock is
// on the open file, so it goes with the process however that ends.
const lockFileName = "lock"

// ErrInUse is returned when another process (or another Client of this
// one) has the device state open: two processes sending from one device
// would reuse its MLS generations and lose messages.
var ErrInUse = errors.New("client: device state in use")
