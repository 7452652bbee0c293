package chatui

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"anom/client"
)

// script answers the prompts in order and records them.
type script struct {
	answers []string
	prompts []string
}

func (s *script) ask(_ context.Context, prompt string) (string, error) {
	s.prompts = append(s.prompts, prompt)
	if len(s.answers) == 0 {
		return "", errors.New("input ended")
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	return a, nil
}

// TestAskNewPINsDuressTwice: the duress PIN is asked twice, and a
// mistyped confirmation asks for it again instead of setting a duress PIN
// nobody knows.
func TestAskNewPINsDuressTwice(t *testing.T) {
	sc := &script{answers: []string{"314159", "314159", "271828", "271829", "271828", "271828"}}
	var warn strings.Builder
	pin, duress, err := AskNewPINs(context.Background(), sc.ask, &warn, "")
	if err != nil || pin != "314159" || duress != "271828" {
		t.Fatalf("AskNewPINs = %q, %q, %v; prompts %q", pin, duress, err, sc.prompts)
	}
	if n := len(sc.prompts); n != 6 {
		t.Fatalf("%d prompts, want 6: %q", n, sc.prompts)
	}
	if sc.prompts[3] != "Duress PIN again: " {
		t.Errorf("the duress PIN is not confirmed: %q", sc.prompts)
	}
	if !strings.Contains(warn.String(), "the duress PINs differ; try again") {
		t.Errorf("no warning for differing duress PINs: %q", warn.String())
	}

	// No duress PIN: nothing to confirm.
	sc = &script{answers: []string{"314159", "314159", ""}}
	if pin, duress, err := AskNewPINs(context.Background(), sc.ask, &warn, "New "); err != nil || pin != "314159" || duress != "" || len(sc.prompts) != 3 {
		t.Fatalf("AskNewPINs = %q, %q, %v; prompts %q", pin, duress, err, sc.prompts)
	}
	// A confirmation that never comes leaves no duress PIN set.
	sc = &script{answers: []string{"314159", "314159", "271828"}}
	if _, _, err := AskNewPINs(context.Background(), sc.ask, &warn, ""); err == nil {
		t.Fatal("AskNewPINs without the duress confirmation succeeded")
	}
}

// TestWrongPINTriesLeft: a wrong PIN says how many tries are left before
// a wipe, and the prompt warns when few are.
func TestWrongPINTriesLeft(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cfg := client.Config{Dir: dir, KDF: testKDF, MaxFailedUnlocks: 4}
	c, err := client.Create(cfg, "314159", "")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	var got []string
	for range 3 {
		left, err := client.PINTriesLeft(dir)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, PINPrompt(left))
		_, err = client.Open(cfg, "000001")
		got = append(got, WrongPINText(err))
	}
	want := []string{
		"PIN: ",
		"wrong PIN: 3 tries left; then a wrong PIN wipes this device",
		"PIN (3 tries left before a wrong PIN wipes this device): ",
		"wrong PIN: 2 tries left; then a wrong PIN wipes this device",
		"PIN (2 tries left before a wrong PIN wipes this device): ",
		"wrong PIN: 1 try left; one more wrong PIN wipes this device",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("shown:\n%q\nwant:\n%q", got, want)
	}
	if p := PINPrompt(1); !strings.Contains(p, "LAST TRY") {
		t.Errorf("last try prompt %q", p)
	}
	c, err = client.Open(cfg, "314159")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if left, _ := client.PINTriesLeft(dir); PINPrompt(left) != "PIN: " {
		t.Errorf("after the right PIN: prompt %q", PINPrompt(left))
	}
}
