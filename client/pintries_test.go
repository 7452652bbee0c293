package client

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestPINTriesLeft: a wrong PIN says how many more the device allows
// before it wipes itself, and PINTriesLeft tells before a PIN is typed;
// the right PIN restores the count.
func TestPINTriesLeft(t *testing.T) {
	const w1, w2 = "000001", "111112"
	for _, tt := range []struct {
		name      string
		maxFailed uint32
		want      []int // before each of three attempts: w1, w2, testPIN
	}{
		{"limit 3", 3, []int{3, 2, 1}},
		{"limit 5", 5, []int{5, 4, 3}},
		{"no limit", 0, []int{-1, -1, -1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "dev")
			c := newClock()
			mustCreate(t, dir, c, settings{maxFailed: tt.maxFailed}).close()
			for i, pin := range []string{w1, w2, testPIN} {
				left, err := PINTriesLeft(dir)
				if err != nil || left != tt.want[i] {
					t.Fatalf("before attempt %d: PINTriesLeft = %d, %v; want %d", i, left, err, tt.want[i])
				}
				v, err := openVaultT(dir, pin, c)
				if pin == testPIN {
					if err != nil {
						t.Fatal(err)
					}
					v.close()
					break
				}
				var wp *WrongPINError
				if !errors.Is(err, ErrWrongPIN) || !errors.As(err, &wp) {
					t.Fatalf("attempt %d: %v, want a *WrongPINError", i, err)
				}
				wantLeft := tt.want[i] - 1
				if tt.maxFailed == 0 {
					wantLeft = -1
				}
				if wp.Left != wantLeft {
					t.Fatalf("attempt %d: %d tries left, want %d", i, wp.Left, wantLeft)
				}
			}
			if left, err := PINTriesLeft(dir); err != nil || left != tt.want[0] {
				t.Fatalf("after the right PIN: PINTriesLeft = %d, %v; want %d", left, err, tt.want[0])
			}
		})
	}
	if _, err := PINTriesLeft(filepath.Join(t.TempDir(), "none")); !errors.Is(err, ErrNoState) {
		t.Fatalf("no device: %v, want ErrNoState", err)
	}
}
