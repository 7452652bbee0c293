package jetstream

import "os"

func tempDir() (string, error) { return os.MkdirTemp("", "anom-natstest-") }
