package store

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		want error
	}{
		{"a", nil},
		{"dev-1_x=y/z.w", nil},
		{strings.Repeat("a", MaxKeyLen), nil},
		{strings.Repeat("a", MaxKeyLen+1), ErrTooLarge},
		{"", ErrInvalid},
		{".", ErrInvalid},
		{".a", ErrInvalid},
		{"a.", ErrInvalid},
		{"a..b", ErrInvalid},
		{"a b", ErrInvalid},
		{"a*b", ErrInvalid},
		{"a>", ErrInvalid},
		{"a\x00", ErrInvalid},
		{"\xff", ErrInvalid},
	}
	for _, tc := range tests {
		err := CheckName("key", tc.name)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("CheckName(%.20q) = %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, b := range []string{"a", "A_b-9", strings.Repeat("b", MaxBucketLen)} {
		if err := CheckBucket(b); err != nil {
			t.Errorf("CheckBucket(%q) = %v", b, err)
		}
	}
	for _, b := range []string{"", "a.b", "a/b", "a b", strings.Repeat("b", MaxBucketLen+1)} {
		if err := CheckBucket(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckBucket(%q) = %v, want ErrInvalid", b, err)
		}
	}
}

// FuzzCheckName: names come from clients. Accepted names must be usable as
// JetStream KV keys and never contain the 0x00 separator of the embedded
// backend's key layout.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"a", "a.b", "a..b", ".a", "a\x00b", "dev/1=x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckName("key", s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("CheckName(%q): untyped error %v", s, err)
			}
			return
		}
		if s == "" || len(s) > MaxKeyLen || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
			t.Fatalf("CheckName accepted %q", s)
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; !isAlnum(c) && !strings.ContainsRune("-_=./", rune(c)) {
				t.Fatalf("CheckName accepted byte %#x in %q", c, s)
			}
		}
		if err := CheckBucket(s); err == nil && strings.ContainsAny(s, "./=") {
			t.Fatalf("CheckBucket accepted %q", s)
		}
	})
}
