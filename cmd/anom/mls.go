package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"anom/mls"
)

// anom mls: an interop tool that works on files, so another MLS
// implementation can be tested against anom. Every message file holds one
// TLS-encoded MLSMessage; state and private key files are anom's own
// encodings and hold secrets (written with mode 0600).

func init() {
	register(command{name: "mls", summary: "MLS interop tool working on files (see README)", run: runMLS})
}

const mlsUsage = `usage: anom mls <verb> [flags]

verbs:
  keypackage --identity NAME --out KP --priv PRIV [--suite 1]
      make a key package (MLSMessage) and its private bundle
  create     --priv PRIV --group ID --state STATE
      create a one-member group
  add        --state STATE --kp KP[,KP...] --commit OUT --welcome OUT [--no-tree]
      commit adding members; the state moves to the new epoch
  remove     --state STATE --leaf N[,N...] --commit OUT
      commit removing members
  update     --state STATE --commit OUT
      commit refreshing this member's path
  join       --priv PRIV --welcome IN --state STATE [--tree IN]
      join from a welcome (tree file: a serialized ratchet tree, if the
      welcome carries none)
  encrypt    --state STATE --in PLAINTEXT --out MSG
  decrypt    --state STATE --in MSG --out PLAINTEXT
  process    --state STATE --in MSG
      process a handshake message (proposal or commit)
  tree       --state STATE --out TREE
      write the ratchet tree
  groupinfo  --state STATE --out GI
      write a signed GroupInfo (MLSMessage) with the ratchet tree and
      external_pub, for external joins
  external-join --priv PRIV --group-info GI --state STATE --commit OUT
      join from a GroupInfo with an external commit (the credential and
      signature key come from the private bundle)
  info       --state STATE
      print the epoch, members and epoch authenticator
`

func runMLS(ctx context.Context, args []string) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(os.Stderr, mlsUsage)
		return flag.ErrHelp
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet("mls "+verb, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, mlsUsage) }
	var (
		identity = fs.String("identity", "", "identity for the basic credential")
		out      = fs.String("out", "", "output file")
		in       = fs.String("in", "", "input file")
		privPath = fs.String("priv", "", "private key bundle file")
		suiteID  = fs.Uint("suite", uint(mls.SuiteX25519AES128), "cipher suite")
		groupID  = fs.String("group", "", "group ID")
		state    = fs.String("state", "", "group state file")
		kps      = fs.String("kp", "", "key package files, comma-separated")
		leaves   = fs.String("leaf", "", "leaf indexes, comma-separated")
		commitF  = fs.String("commit", "", "commit output file")
		welcomeF = fs.String("welcome", "", "welcome file")
		treeF    = fs.String("tree", "", "ratchet tree file")
		noTree   = fs.Bool("no-tree", false, "leave the ratchet tree out of the welcome")
		giFile   = fs.String("group-info", "", "group info file")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	need := func(names ...string) error {
		for _, n := range names {
			if fs.Lookup(n).Value.String() == "" {
				return fmt.Errorf("mls %s: --%s is required", verb, n)
			}
		}
		return nil
	}
	cfg := mls.Config{}

	switch verb {
	case "keypackage":
		if err := need("identity", "out", "priv"); err != nil {
			return err
		}
		s, err := mls.Suite(mls.CipherSuiteID(*suiteID))
		if err != nil {
			return err
		}
		b, err := newBasicKeyPackage(s, *identity)
		if err != nil {
			return err
		}
		msg := &mls.MLSMessage{Version: mls.ProtocolMLS10, WireFormat: mls.WireKeyPackage, KeyPackage: b.KeyPackage}
		if err := writeFile(*out, msg.Encode(), 0o644); err != nil {
			return err
		}
		return writeFile(*privPath, b.Encode(), 0o600)

	case "create":
		if err := need("priv", "group", "state"); err != nil {
			return err
		}
		b, err := readBundle(*privPath)
		if err != nil {
			return err
		}
		g, err := mls.CreateGroup(cfg, []byte(*groupID), b, mls.GroupOptions{})
		if err != nil {
			return err
		}
		return saveGroup(*state, g)

	case "add", "remove", "update":
		if err := need("state", "commit"); err != nil {
			return err
		}
		g, err := loadGroup(cfg, *state)
		if err != nil {
			return err
		}
		var opts mls.CommitOptions
		switch verb {
		case "add":
			if err := need("kp", "welcome"); err != nil {
				return err
			}
			for _, f := range strings.Split(*kps, ",") {
				m, err := readMessage(f)
				if err != nil {
					return err
				}
				if m.KeyPackage == nil {
					return fmt.Errorf("%s: not a key package", f)
				}
				if err := mls.ValidateKeyPackage(g.CipherSuite(), m.KeyPackage, time.Now(), nil); err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				opts.Add = append(opts.Add, m.KeyPackage)
			}
			opts.WelcomeWithoutTree = *noTree
		case "remove":
			if err := need("leaf"); err != nil {
				return err
			}
			for _, l := range strings.Split(*leaves, ",") {
				var n uint32
				if _, err := fmt.Sscan(l, &n); err != nil {
					return fmt.Errorf("bad leaf index %q", l)
				}
				opts.Remove = append(opts.Remove, mls.LeafIndex(n))
			}
		}
		pc, err := g.Commit(opts)
		if err != nil {
			return err
		}
		if err := writeFile(*commitF, pc.Commit.Encode(), 0o644); err != nil {
			return err
		}
		if pc.Welcome != nil {
			if err := writeFile(*welcomeF, pc.Welcome.Encode(), 0o644); err != nil {
				return err
			}
		}
		if err := g.ApplyCommit(pc); err != nil {
			return err
		}
		return saveGroup(*state, g)

	case "join":
		if err := need("priv", "welcome", "state"); err != nil {
			return err
		}
		b, err := readBundle(*privPath)
		if err != nil {
			return err
		}
		w, err := readMessage(*welcomeF)
		if err != nil {
			return err
		}
		var tree []*mls.Node
		if *treeF != "" {
			data, err := os.ReadFile(*treeF)
			if err != nil {
				return err
			}
			if tree, err = mls.DecodeRatchetTree(data); err != nil {
				return err
			}
		}
		g, err := mls.Join(cfg, w, b, tree)
		if err != nil {
			return err
		}
		return saveGroup(*state, g)

	case "encrypt":
		if err := need("state", "in", "out"); err != nil {
			return err
		}
		g, err := loadGroup(cfg, *state)
		if err != nil {
			return err
		}
		pt, err := readInput(*in)
		if err != nil {
			return err
		}
		m, err := g.Encrypt(pt, nil)
		if err != nil {
			return err
		}
		if err := writeFile(*out, m.Encode(), 0o644); err != nil {
			return err
		}
		return saveGroup(*state, g)

	case "decrypt", "process":
		if err := need("state", "in"); err != nil {
			return err
		}
		g, err := loadGroup(cfg, *state)
		if err != nil {
			return err
		}
		m, err := readMessage(*in)
		if err != nil {
			return err
		}
		rec, err := g.Handle(m)
		if err != nil {
			return err
		}
		switch rec.Type {
		case mls.ContentApplication:
			if verb != "decrypt" {
				return errors.New("message is application data: use decrypt")
			}
			if *out == "" || *out == "-" {
				os.Stdout.Write(rec.Application)
			} else if err := writeFile(*out, rec.Application, 0o600); err != nil {
				return err
			}
		case mls.ContentProposal:
			fmt.Fprintf(os.Stderr, "cached proposal of type %d\n", rec.Proposal.Type)
		case mls.ContentCommit:
			fmt.Fprintf(os.Stderr, "applied commit: epoch %d, added %v, removed %v\n", g.Epoch(), rec.Commit.Added, rec.Commit.Removed)
			if rec.Commit.RemovedSelf {
				fmt.Fprintln(os.Stderr, "this member was removed from the group")
			}
		}
		return saveGroup(*state, g)

	case "tree":
		if err := need("state", "out"); err != nil {
			return err
		}
		g, err := loadGroup(cfg, *state)
		if err != nil {
			return err
		}
		return writeFile(*out, mls.EncodeRatchetTree(g.Tree()), 0o644)

	case "groupinfo":
		if err := need("state", "out"); err != nil {
			return err
		}
		g, err := loadGroup(cfg, *state)
		if err != nil {
			return err
		}
		gi, err := g.GroupInfo(true, true)
		if err != nil {
			return err
		}
		msg := &mls.MLSMessage{Version: mls.ProtocolMLS10, WireFormat: mls.WireGroupInfo, GroupInfo: gi}
		return writeFile(*out, msg.Encode(), 0o644)

	case "external-join":
		if err := need("priv", "group-info", "state", "commit"); err != nil {
			return err
		}
		b, err := readBundle(*privPath)
		if err != nil {
			return err
		}
		m, err := readMessage(*giFile)
		if err != nil {
			return err
		}
		if m.GroupInfo == nil {
			return fmt.Errorf("%s: not a group info", *giFile)
		}
		g, commit, err := mls.ExternalJoin(cfg, m.GroupInfo, nil, b.KeyPackage.LeafNode.Credential, b.SignaturePriv, mls.ExternalJoinOptions{})
		if err != nil {
			return err
		}
		if err := writeFile(*commitF, commit.Encode(), 0o644); err != nil {
			return err
		}
		return saveGroup(*state, g)

	case "info":
		if err := need("state"); err != nil {
			return err
		}
		g, err := loadGroup(cfg, *state)
		if err != nil {
			return err
		}
		fmt.Printf("group %q epoch %d suite %d active %v\n", g.GroupID(), g.Epoch(), g.CipherSuite().ID, g.Active())
		fmt.Printf("epoch authenticator %x\n", g.EpochAuthenticator())
		for _, m := range g.Members() {
			self := ""
			if m.Self {
				self = " (self)"
			}
			fmt.Printf("  leaf %d: %s%s\n", m.Leaf, m.Credential.Identity, self)
		}
		return nil
	}
	fmt.Fprint(os.Stderr, mlsUsage)
	return fmt.Errorf("unknown verb %q", verb)
}

// newBasicKeyPackage makes a fresh signature key and a key package for it
// with a basic credential naming identity.
func newBasicKeyPackage(s *mls.CipherSuite, identity string) (*mls.KeyPackageBundle, error) {
	sig, _, err := s.GenerateSignatureKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return mls.NewKeyPackage(s, mls.Credential{Type: mls.CredentialBasic, Identity: []byte(identity)}, sig, mls.KeyPackageOptions{}, rand.Reader, time.Now())
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if path == "-" {
		_, err := os.Stdout.Write(data)
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

func readMessage(path string) (*mls.MLSMessage, error) {
	data, err := readInput(path)
	if err != nil {
		return nil, err
	}
	m, err := mls.DecodeMLSMessage(data)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return m, nil
}

func readBundle(path string) (*mls.KeyPackageBundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, err := mls.DecodeKeyPackageBundle(data)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, nil
}

func loadGroup(cfg mls.Config, path string) (*mls.Group, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	g, err := mls.Load(cfg, data)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return g, nil
}

func saveGroup(path string, g *mls.Group) error {
	data, err := g.Save()
	if err != nil {
		return err
	}
	return writeFile(path, data, 0o600)
}
