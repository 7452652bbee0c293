package main

import (
	"context"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

	"anom/client"
	"anom/identity"
	"anom/internal/chatui"
)

func init() {
	register(command{name: "chat", summary: "terminal client: activate a device, then chat (1:1, groups, files)", run: runChat})
}

// chatFlags are the flags of anom chat.
type chatFlags struct {
	home, pinFile, logFile                     string
	invite                                     string
	server, caFingerprint, caFile, root, tlsNm string
	code, codeFile, username                   string
	wipeAfter                                  time.Duration
	maxPINTries                                int
	pair, changePIN                            bool
}

func runChat(ctx context.Context, args []string) error {
	err := chat(ctx, args)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil // Ctrl-C: leave quietly, as /quit does
	}
	return err
}

func chat(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	var f chatFlags
	defHome := os.Getenv("ANOM_HOME")
	if defHome == "" {
		if h, err := os.UserHomeDir(); err == nil {
			defHome = filepath.Join(h, ".anom")
		}
	}
	fs.StringVar(&f.home, "home", defHome, "device state directory (env ANOM_HOME)")
	fs.StringVar(&f.pinFile, "pin-file", "", "read the PIN from this file's first line (a second line is the duress PIN of a new device) instead of the terminal")
	fs.BoolVar(&f.changePIN, "change-pin", false, "after unlocking, ask for a new PIN and duress PIN")
	fs.StringVar(&f.logFile, "log", "", "write the client's logs to this file")
	fs.StringVar(&f.invite, "invite", "", "first run: the network's invite (anom://HOST:PORT?ca=...&root=..., the server's DATA/invite); --server, --ca-fingerprint, --root and --tls-name override its parts")
	fs.StringVar(&f.server, "server", "", "first run: the server's host:port")
	fs.StringVar(&f.caFingerprint, "ca-fingerprint", "", "first run: SHA-256 of the network's TLS CA (hex), as anom admin init prints it")
	fs.StringVar(&f.caFile, "ca", "", "first run, optional: the network's CA certificate (PEM), for a server that does not send it")
	fs.StringVar(&f.root, "root", "", "first run: the network root public key (hex, the data directory's root.pub)")
	fs.StringVar(&f.tlsNm, "tls-name", "", "first run, optional: the name the server's certificate must carry")
	fs.StringVar(&f.code, "code", "", "first run: the activation code (shows in ps for the whole session: prefer the prompt or --code-file)")
	fs.StringVar(&f.codeFile, "code-file", "", "first run: read the activation code from this file's first line (default: asked on the terminal)")
	fs.StringVar(&f.username, "username", "", "first run: the username to take")
	fs.BoolVar(&f.pair, "pair", false, "first run: this is a further device of an existing user; show a pairing code for one of the user's devices to approve (/approve CODE) before activating")
	fs.DurationVar(&f.wipeAfter, "wipe-after", 0, "first run: wipe the device after this long without reaching the server (0: never)")
	fs.IntVar(&f.maxPINTries, "max-pin-tries", 10, "first run: wipe the device after this many wrong PINs in a row (at most 100; 0: never)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if f.home == "" {
		return errors.New("--home is required (no home directory to default to)")
	}
	if f.code != "" {
		fmt.Fprintln(os.Stderr, "warning: an activation code given with --code shows in the process list (ps) while anom chat runs; use --code-file or the prompt")
	}
	if f.codeFile != "" {
		code, err := readCodeFile(f.codeFile)
		if err != nil {
			return err
		}
		f.code = code
	}
	in := &terminal{in: os.Stdin, out: os.Stderr}
	queue := chatui.NewQueue()
	logger := slog.New(slog.DiscardHandler)
	if f.logFile != "" {
		lf, err := os.OpenFile(f.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("opening the log file: %w", err)
		}
		defer lf.Close()
		logger = slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := client.Config{Dir: f.home, Logger: logger, OnEvent: queue.Push,
		WipeAfter: f.wipeAfter, MaxFailedUnlocks: f.maxPINTries}

	_, statErr := os.Stat(f.home)
	existed := statErr == nil
	c, pin, made, err := openOrCreate(ctx, cfg, &f, in)
	if err != nil {
		if made {
			if c != nil {
				c.Close()
			}
			if rerr := removeNewHome(f.home, existed); rerr != nil {
				return fmt.Errorf("%w (and removing the half-made device in %s: %v)", err, f.home, rerr)
			}
		}
		return err
	}
	closed := false
	defer func() {
		if !closed {
			c.Close()
		}
	}()
	if f.changePIN {
		if err := changePIN(ctx, c, pin, in); err != nil {
			return err
		}
	}
	pinAdvice(c)

	if _, err := c.Identity(); errors.Is(err, client.ErrNotActivated) {
		if err := activate(ctx, c, &f, in); err != nil {
			if made {
				// A device made for this activation goes with it: no
				// half-made home folder is left behind.
				closed = true
				c.Close()
				if rerr := removeNewHome(f.home, existed); rerr != nil {
					return fmt.Errorf("%w (and removing the new device in %s: %v)", err, f.home, rerr)
				}
			}
			return err
		}
	} else if err != nil {
		return err
	} else {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := c.Connect(cctx)
		cancel()
		switch {
		case client.IsCode(err, client.CodeRevoked):
			return chatui.ErrRevoked
		case client.IsCode(err, client.CodeExpired):
			return chatui.ErrExpired
		case errors.Is(err, client.ErrWiped):
			return errors.New("this device has been wiped")
		case err != nil:
			fmt.Fprintf(os.Stderr, "not connected: %v (messages will come once the server is reachable)\n", err)
		}
	}
	s, err := chatui.New(chatui.Config{Client: c, Events: queue, Out: os.Stdout})
	if err != nil {
		return err
	}
	input, restore := chatInput(os.Stdin, os.Stdout)
	defer restore()
	return s.Run(ctx, input)
}

// openOrCreate unlocks the device in cfg.Dir, or makes a new one; it
// returns the PIN that did.
//
// What the duress PIN leads to is told apart from nothing here: the client
// returns a device that was never activated, and this goes on exactly as
// for one (the activation questions), printing nothing about a wipe.
//
// made reports that it made the device in an empty or new folder: the
// caller removes it again if the activation fails.
func openOrCreate(ctx context.Context, cfg client.Config, f *chatFlags, in *terminal) (*client.Client, string, bool, error) {
	pins, err := readPINFile(f.pinFile)
	if err != nil {
		return nil, "", false, err
	}
	pin := ""
	if len(pins) > 0 {
		pin = pins[0]
	}
	empty := false
	for try := 0; ; try++ {
		if ents, _ := os.ReadDir(cfg.Dir); len(ents) == 0 {
			empty = true
			break // nothing there: make a new device
		}
		if pin == "" {
			left, err := client.PINTriesLeft(cfg.Dir)
			if err != nil && !errors.Is(err, client.ErrNoState) {
				return nil, "", false, err
			}
			if pin, err = in.secret(ctx, chatui.PINPrompt(left)); err != nil {
				return nil, "", false, err
			}
		}
		c, err := client.Open(cfg, pin)
		switch {
		case err == nil:
			return c, pin, false, nil
		case errors.Is(err, client.ErrNoState):
			if f.pinFile == "" {
				pins = nil // the PIN typed was to unlock: ask for a new one
			}
		case errors.Is(err, client.ErrWrongPIN) && f.pinFile == "" && try < 2:
			fmt.Fprintln(os.Stderr, chatui.WrongPINText(err))
			pin = ""
			continue
		case errors.Is(err, client.ErrWrongPIN):
			return nil, "", false, errors.New(chatui.WrongPINText(err))
		case errors.Is(err, client.ErrWiped):
			return nil, "", false, errors.New("this device has been wiped (its keys and messages are gone); run anom chat again to set up a new one")
		default:
			return nil, "", false, err
		}
		break
	}
	fmt.Fprintf(os.Stderr, "No device in %s: setting up a new one.\n", cfg.Dir)
	var duress string
	if len(pins) > 0 {
		pin = pins[0]
		if len(pins) > 1 {
			duress = pins[1]
		}
	} else if pin, duress, err = askNewPINs(ctx, in, ""); err != nil {
		return nil, "", false, err
	}
	c, err := client.Create(cfg, pin, duress)
	if errors.Is(err, client.ErrBadPIN) {
		return nil, "", empty, fmt.Errorf("unusable PIN: %w", err)
	}
	return c, pin, empty, err
}

// removeNewHome removes the device anom chat made in home for an
// activation that failed: the folder, or only what is in it if it existed
// (empty) before.
func removeNewHome(home string, existed bool) error {
	if !existed {
		return os.RemoveAll(home)
	}
	ents, err := os.ReadDir(home)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(home, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// readCodeFile reads the activation code from the first line of path.
func readCodeFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the activation code file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if strings.TrimSpace(line) == "" {
		return "", errors.New("the activation code file's first line is empty")
	}
	return strings.TrimSpace(line), nil
}

// askNewPINs asks for a new PIN and a duress PIN, each twice, until they
// pass client.CheckNewPIN; prefix starts the prompts ("", "New ").
func askNewPINs(ctx context.Context, in *terminal, prefix string) (pin, duress string, err error) {
	return chatui.AskNewPINs(ctx, in.secret, os.Stderr, prefix)
}

// changePIN sets a new PIN and duress PIN (anom chat --change-pin).
func changePIN(ctx context.Context, c *client.Client, old string, in *terminal) error {
	pin, duress, err := askNewPINs(ctx, in, "New ")
	if err != nil {
		return err
	}
	if err := c.ChangePIN(old, pin, duress); err != nil {
		return fmt.Errorf("changing the PIN: %w", err)
	}
	fmt.Fprintln(os.Stderr, "PIN changed.")
	return nil
}

// pinAdvice says when the device's PIN should be changed.
func pinAdvice(c *client.Client) {
	st := c.PINStatus()
	if st.Weak {
		fmt.Fprintf(os.Stderr, "Your PIN is weaker than new PINs may be (at least %d digits, or a passphrase): change it with anom chat --change-pin.\n", client.MinPINLength)
	}
	if st.DuressDropped {
		fmt.Fprintln(os.Stderr, "This device's state was upgraded and a duress PIN, if you had one, no longer works: set it again with anom chat --change-pin.")
	}
}

func readPINFile(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the PIN file: %w", err)
	}
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	var out []string
	for i, l := range lines {
		if i > 1 {
			break
		}
		out = append(out, strings.TrimSpace(l))
	}
	if len(out) == 0 || out[0] == "" {
		return nil, errors.New("the PIN file's first line is empty")
	}
	if len(out) > 1 && out[1] == "" {
		out = out[:1]
	}
	return out, nil
}

// activate redeems an activation code for a new device, asking for what
// the flags did not give.
func activate(ctx context.Context, c *client.Client, f *chatFlags, in *terminal) error {
	var err error
	ask := func(v *string, prompt string) {
		for err == nil && strings.TrimSpace(*v) == "" {
			*v, err = in.line(ctx, prompt)
		}
	}
	if strings.TrimSpace(f.invite) == "" && strings.TrimSpace(f.server) == "" {
		f.invite, err = in.line(ctx, "Network invite (anom://...; Enter to give the server, CA fingerprint and root key one by one): ")
	}
	if strings.TrimSpace(f.invite) == "" {
		ask(&f.server, "Server address (host:port): ")
		ask(&f.caFingerprint, "Network CA fingerprint (hex): ")
		ask(&f.root, "Network root key (hex): ")
	}
	ask(&f.code, "Activation code: ")
	ask(&f.username, "Username: ")
	if err != nil {
		return err
	}
	n, err := networkFromFlags(f)
	if err != nil {
		return err
	}
	user, err := identity.CanonicalUsername(strings.TrimSpace(f.username))
	if err != nil {
		return fmt.Errorf("username: %w", err)
	}
	code, err := identity.ParseActivationCode(strings.TrimSpace(f.code))
	if err != nil {
		return fmt.Errorf("activation code: %w", err)
	}
	if f.pair {
		if err := pair(ctx, c, n, user, in); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "Activating %s on %s...\n", user, n.Address)
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.Activate(actx, n, code.String(), user); err != nil {
		switch {
		case client.IsCode(err, client.CodeBadActivationCode):
			return errors.New("activation refused: the code is unknown, used or expired")
		case client.IsCode(err, client.CodeUsernameTaken):
			return fmt.Errorf("activation refused: the username %s is taken (if it is yours, activate this device with --pair)", user)
		case errors.Is(err, client.ErrPin):
			return fmt.Errorf("activation refused: the server's certificate does not match the CA fingerprint (the code was not sent): %w", err)
		case errors.Is(err, client.ErrWrongRoot):
			return fmt.Errorf("activation refused: the server is not of the network whose root key the invite gives (the code was not sent): %w", err)
		}
		return err
	}
	id, err := c.Identity()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Activated: %s, device %s, subscription until %s.\n", id.Username, id.DeviceID, id.Certificate.NotAfter.Format(time.DateOnly))
	return nil
}

// pair makes this device's pairing request and shows what the user types
// on one of their devices: the short code, with the request published on
// the server, or the long one if the server does not take it.
func pair(ctx context.Context, c *client.Client, n client.Network, user string, in *terminal) error {
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	p, err := c.PublishPairing(pctx, n, user)
	cancel()
	var se *client.ServerError
	code, fp, until := "", "", ""
	switch {
	case err == nil:
		code, fp, until = p.Code, p.Request.Fingerprint(), p.Expires.Local().Format("15:04")
	case errors.As(err, &se):
		// A server that does not keep pairing requests (or is refusing
		// them for now): the long code needs nothing from it.
		fmt.Fprintf(os.Stderr, "The server did not take the pairing request (%s): use the long code.\n", se.Message)
		req, err := c.BeginPairing(user)
		if err != nil {
			return fmt.Errorf("pairing: %w", err)
		}
		code, fp = req.Code(), req.Fingerprint()
	case errors.Is(err, client.ErrPin):
		return fmt.Errorf("pairing: the server's certificate does not match the CA fingerprint: %w", err)
	case errors.Is(err, client.ErrWrongRoot):
		return fmt.Errorf("pairing: the server is not of the network whose root key the invite gives: %w", err)
	default:
		return fmt.Errorf("pairing: %w", err)
	}
	fmt.Fprintf(os.Stderr, "This device asks to become a further device of %s.\n", user)
	fmt.Fprintf(os.Stderr, "On one of %s's devices, type:  /approve %s\n", user, code)
	fmt.Fprintf(os.Stderr, "and check that it shows this fingerprint:  %s\n", fp)
	if until != "" {
		fmt.Fprintf(os.Stderr, "(the code works until %s)\n", until)
	}
	if _, err := in.line(ctx, "Press Enter once it is approved: "); err != nil {
		return err
	}
	return nil
}

// networkFromFlags reads what a device pins about its network: the
// invite, if any, with the separate flags taking precedence over its parts.
func networkFromFlags(f *chatFlags) (client.Network, error) {
	var n client.Network
	invite := strings.TrimSpace(f.invite) != ""
	if invite {
		var err error
		if n, err = client.ParseInvite(f.invite); err != nil {
			return n, err
		}
	}
	if a := strings.TrimSpace(f.server); a != "" {
		n.Address = a
	}
	if !strings.Contains(n.Address, ":") {
		return n, fmt.Errorf("server address %q: want host:port", n.Address)
	}
	if f.caFingerprint != "" || !invite {
		fp, err := parseHex(f.caFingerprint)
		if err != nil || len(fp) != 32 {
			return n, errors.New("CA fingerprint: want the 64 hex digits of a SHA-256")
		}
		copy(n.CAFingerprint[:], fp)
	}
	if f.root != "" || !invite {
		root, err := parseHex(f.root)
		if err != nil || len(root) != 32 {
			return n, errors.New("root key: want the 64 hex digits of an Ed25519 public key (root.pub)")
		}
		n.Root = identity.RootPublicKey(root)
	}
	if nm := strings.TrimSpace(f.tlsNm); nm != "" {
		n.TLSServerName = nm
	}
	if f.caFile != "" {
		b, err := os.ReadFile(f.caFile)
		if err != nil {
			return n, fmt.Errorf("reading the CA certificate: %w", err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return n, errors.New("reading the CA certificate: not a PEM certificate")
		}
		n.CACert = blk.Bytes
	}
	return n, nil
}

// parseHex accepts hex with optional colons or spaces between bytes.
func parseHex(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ':' || r == ' ' {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	return hex.DecodeString(s)
}

// terminal asks questions on the controlling terminal: lines are read a
// byte at a time (so nothing typed after them is swallowed) and secrets
// without echo when the input is a terminal.
type terminal struct {
	in  *os.File
	out io.Writer
}

func (t *terminal) line(ctx context.Context, prompt string) (string, error) {
	fmt.Fprint(t.out, prompt)
	type result struct {
		s   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := t.readLine()
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r.s, r.err
	case <-ctx.Done():
		fmt.Fprintln(t.out)
		return "", ctx.Err()
	}
}

func (t *terminal) readLine() (string, error) {
	var sb strings.Builder
	b := make([]byte, 1)
	for {
		n, err := t.in.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				return strings.TrimRight(sb.String(), "\r"), nil
			}
			if sb.Len() > 4096 {
				return "", errors.New("input line too long")
			}
			sb.WriteByte(b[0])
		}
		if err == io.EOF {
			if sb.Len() > 0 {
				return sb.String(), nil
			}
			return "", errors.New("input ended")
		}
		if err != nil {
			return "", err
		}
	}
}

// secret reads a PIN without echo; Ctrl-C (ctx) gives the terminal back
// as it was.
func (t *terminal) secret(ctx context.Context, prompt string) (string, error) {
	fd := int(t.in.Fd())
	if !term.IsTerminal(fd) {
		return t.line(ctx, prompt)
	}
	state, err := term.GetState(fd)
	if err != nil {
		return "", fmt.Errorf("reading the PIN: %w", err)
	}
	fmt.Fprint(t.out, prompt)
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		fmt.Fprintln(t.out)
		if r.err != nil {
			return "", fmt.Errorf("reading the PIN: %w", r.err)
		}
		return string(r.b), nil
	case <-ctx.Done():
		term.Restore(fd, state)
		fmt.Fprintln(t.out)
		return "", ctx.Err()
	}
}
