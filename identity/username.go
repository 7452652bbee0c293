package identity

import (
	"fmt"
	"strings"
)

// Username limits.
const (
	MinUsernameLen = 3
	MaxUsernameLen = 32
)

// CanonicalUsername case-folds s and checks that the result is 3 to 32
// characters of [a-z0-9._-]. Only ASCII is accepted, so folding is
// unambiguous and two usernames that look alike are equal.
func CanonicalUsername(s string) (string, error) {
	if len(s) < MinUsernameLen || len(s) > MaxUsernameLen {
		return "", fmt.Errorf("%w: %d characters, want %d to %d", ErrInvalidUsername, len(s), MinUsernameLen, MaxUsernameLen)
	}
	u := strings.ToLower(s)
	for i := 0; i < len(u); i++ {
		if !usernameByte(u[i]) {
			return "", fmt.Errorf("%w: character %q at %d is not one of [a-z0-9._-]", ErrInvalidUsername, s[i], i)
		}
	}
	return u, nil
}

// checkCanonical accepts only usernames already in canonical form.
func checkCanonical(s string) error {
	u, err := CanonicalUsername(s)
	if err != nil {
		return err
	}
	if u != s {
		return fmt.Errorf("%w: %q is not case-folded", ErrInvalidUsername, s)
	}
	return nil
}

func usernameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}
