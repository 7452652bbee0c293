package chatui

import (
	"context"
	"errors"
	"fmt"
	"io"

	"anom/client"
)

// Asker asks one question on the terminal and returns the answer; a
// PIN's answer is read without echo.
type Asker func(ctx context.Context, prompt string) (string, error)

// AskNewPINs asks for a new PIN and a duress PIN, each twice, until they
// pass client.CheckNewPIN and differ; an empty duress PIN means none.
// prefix starts the prompts ("", "New "); what is wrong with an answer is
// written to warn.
func AskNewPINs(ctx context.Context, ask Asker, warn io.Writer, prefix string) (pin, duress string, err error) {
	for {
		if pin, err = ask(ctx, prefix+"PIN (at least 6 digits, or a passphrase): "); err != nil {
			return "", "", err
		}
		if err := client.CheckNewPIN(pin); err != nil {
			fmt.Fprintf(warn, "%v; try again\n", err)
			continue
		}
		again, err := ask(ctx, prefix+"PIN again: ")
		if err != nil {
			return "", "", err
		}
		if pin == again {
			break
		}
		fmt.Fprintln(warn, "the PINs differ; try again")
	}
	for {
		if duress, err = ask(ctx, "Duress PIN (entering it instead of the PIN erases this device and opens an empty one; empty for none): "); err != nil {
			return "", "", err
		}
		if duress == "" {
			return pin, "", nil
		}
		if duress == pin {
			fmt.Fprintln(warn, "the duress PIN must differ from the PIN; try again")
			continue
		}
		if err := client.CheckNewPIN(duress); err != nil {
			fmt.Fprintf(warn, "%v; try again\n", err)
			continue
		}
		// A mistyped duress PIN would be one nobody knows: the device
		// would have no working duress PIN, and its owner would not know.
		again, err := ask(ctx, "Duress PIN again: ")
		if err != nil {
			return "", "", err
		}
		if again == duress {
			return pin, duress, nil
		}
		fmt.Fprintln(warn, "the duress PINs differ; try again")
	}
}

// PINPrompt is the prompt for the PIN of a device that allows left more
// tries (client.PINTriesLeft; -1 for no limit): it warns once few are
// left.
func PINPrompt(left int) string {
	switch {
	case left < 0 || left > 3:
		return "PIN: "
	case left == 1:
		return "PIN (LAST TRY: a wrong PIN now wipes this device): "
	}
	return fmt.Sprintf("PIN (%d tries left before a wrong PIN wipes this device): ", left)
}

// WrongPINText says that a PIN was wrong and how many tries are left
// before the device wipes itself.
func WrongPINText(err error) string {
	var wp *client.WrongPINError
	if !errors.As(err, &wp) || wp.Left < 0 {
		return "wrong PIN"
	}
	if wp.Left == 1 {
		return "wrong PIN: 1 try left; one more wrong PIN wipes this device"
	}
	return fmt.Sprintf("wrong PIN: %d tries left; then a wrong PIN wipes this device", wp.Left)
}
