package systest

import (
	"bytes"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"anom/internal/custodian"
)

// assertNoEscrowSecrets scans every file under the server's data dir for
// the shares and issuer keys that escrow init dealt into keys: their file
// names, the share file's PEM type, and each secret's bytes, raw and in
// hex.
func assertNoEscrowSecrets(t *testing.T, data, keys string) {
	t.Helper()
	type secret struct {
		what string
		b    []byte
	}
	var secrets []secret
	add := func(what string, b []byte) {
		secrets = append(secrets, secret{what, b}, secret{what + " (hex)", []byte(hex.EncodeToString(b))})
	}
	shares, _ := filepath.Glob(filepath.Join(keys, "*", "*.share"))
	issuers, _ := filepath.Glob(filepath.Join(keys, "issuer-*", "issuer-*.key"))
	if len(shares) != 3 || len(issuers) != 1 {
		t.Fatalf("escrow init's output %s holds %d shares and %d issuer keys, want 3 and 1", keys, len(shares), len(issuers))
	}
	for _, p := range shares {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := custodian.ParseShareFile(b)
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := f.Share.MarshalBinary()
		scalar, _ := f.Share.Value.MarshalBinary()
		add(p+" share", enc)
		add(p+" share value", scalar)
		add(p+" signing key", f.Key.Seed())
	}
	for _, p := range issuers {
		k, err := readSeedKey(p)
		if err != nil {
			t.Fatal(err)
		}
		add(p, k.Seed())
	}
	secrets = append(secrets, secret{"a share file", []byte("ANOM CUSTODIAN SECRET")})
	files := 0
	err := filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		name := d.Name()
		if strings.HasSuffix(name, ".share") || (strings.HasPrefix(name, "issuer-") && strings.HasSuffix(name, ".key")) {
			t.Errorf("the server's data dir holds %s", p)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(b, s.b) {
				t.Errorf("the server's data dir file %s holds %s", p, s.what)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("scanned only %d files in %s", files, data)
	}
}

// runIn runs anom in dir and returns its output and error.
func runIn(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(anomBin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAttackDataDirHoldsEscrowSecrets: whoever reads the server's data dir
// must find no escrow share and no warrant issuer key. escrow init deals
// into a folder per custodian and issuer outside --data and refuses any
// --out inside it, directly or through a symbolic link; after the README's
// set-up (first server run, escrow init, distributor, codes, the server
// again, a custodian, the archive) a scan of the data dir finds none of the
// secrets.
func TestAttackDataDirHoldsEscrowSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the anom binary")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "net")
	addr := freeAddr(t)
	srv := startAnomServer(t, data, addr)
	srv.waitLog(t, "invite (in ")
	srv.stop(t)

	// Every way into the data dir is refused, and leaves no policy.
	if err := os.Symlink(data, filepath.Join(dir, "net-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys-with-link"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(data, "store"), filepath.Join(dir, "keys-with-link", "B")); err != nil {
		t.Fatal(err)
	}
	init := []string{"admin", "escrow", "init", "--data", "net", "--custodians", "A,B,C", "--threshold", "2"}
	for _, out := range []string{"", "net", "net/escrow", "net/../net/keys", "net-link/keys", "keys-with-link"} {
		args := init
		if out != "" {
			args = append(append([]string{}, init...), "--out", out)
		}
		got, err := runIn(t, dir, args...)
		if err == nil {
			t.Fatalf("escrow init --out %q succeeded:\n%s", out, got)
		}
		if out != "" && !strings.Contains(got, "inside the server's data directory") {
			t.Fatalf("escrow init --out %q said:\n%s", out, got)
		}
		if b, _ := os.ReadFile(filepath.Join(data, "escrow-policy")); len(b) != 0 {
			t.Fatalf("escrow init --out %q wrote a policy", out)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "keys-with-link")); len(ents) != 1 {
		t.Fatalf("a refused escrow init wrote into its --out: %v", ents)
	}

	// The README's set-up.
	got, err := runIn(t, dir, append(init, "--out", "escrow-keys")...)
	if err != nil || !strings.Contains(got, "escrow-keys/A/A.share") || !strings.Contains(got, "escrow-keys/issuer-Court/issuer-Court.key") {
		t.Fatalf("escrow init: %v\n%s", err, got)
	}
	// Admin commands go to the running server.
	srv = startAnomServer(t, data, addr)
	srv.waitLog(t, "invite (in ")
	for _, args := range [][]string{
		{"admin", "distributor", "add", "shop", "--quota", "10", "--data", "net"},
		{"admin", "codes", "issue", "--distributor", "shop", "--count", "2", "--months", "12", "--data", "net"},
	} {
		if got, err := runIn(t, dir, args...); err != nil {
			t.Fatalf("anom %s: %v\n%s", strings.Join(args, " "), err, got)
		}
	}
	archKey, err := runIn(t, dir, "archive", "key", "--data", filepath.Join(dir, "arch"))
	if err != nil {
		t.Fatal(err)
	}
	_, line := startAnom(t, "custodian", "--share", filepath.Join(dir, "escrow-keys", "A", "A.share"), "--policy", filepath.Join(data, "escrow-policy"),
		"--root", filepath.Join(data, "root.pub"), "--listen", "127.0.0.1:0",
		"--data", filepath.Join(dir, "cust-A"), "--archive-key", strings.TrimSpace(archKey), "--archive-pin", archivePin(t, filepath.Join(dir, "arch")))
	f := strings.Fields(line)
	if len(f) != 4 {
		t.Fatalf("custodian printed %q", line)
	}
	serve, _ := startAnom(t, "archive", "serve", "--source", "https://"+addr, "--source-ca", filepath.Join(data, "ca.crt"),
		"--source-token", filepath.Join(data, "archive.token"), "--policy", filepath.Join(data, "escrow-policy"),
		"--root", filepath.Join(data, "root.pub"), "--data", filepath.Join(dir, "arch"),
		"--custodian", f[3])
	serve.Process.Kill()
	serve.Wait()
	srv.stop(t)

	assertNoEscrowSecrets(t, data, filepath.Join(dir, "escrow-keys"))
}
