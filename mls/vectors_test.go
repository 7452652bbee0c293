package mls

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The official MLS interop vectors live outside the repository, in
// ../shared/mls-vectors (override with MLS_VECTORS). A missing folder, a
// missing file or a file with no case fails the test.

func vectorsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("MLS_VECTORS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "mls-vectors")
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("MLS vectors folder %q not found (set MLS_VECTORS): %v", dir, err)
	}
	return dir
}

// loadVectors decodes a vector file into a slice of cases.
func loadVectors[T any](t testing.TB, name string) []T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorsDir(t), name))
	if err != nil {
		t.Fatalf("reading vectors: %v", err)
	}
	var cases []T
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatalf("parsing %s: %v", name, err)
	}
	if len(cases) == 0 {
		t.Fatalf("%s holds no cases", name)
	}
	return cases
}

// hexBytes decodes a JSON hex string; null decodes to nil.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == nil {
		*h = nil
		return nil
	}
	v, err := hex.DecodeString(*s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// suiteTally counts the cases run and skipped for a vector file and fails
// the test if none ran.
type suiteTally struct {
	t            *testing.T
	file         string
	run, skipped int
}

func newTally(t *testing.T, file string) *suiteTally { return &suiteTally{t: t, file: file} }

// suite returns the cipher suite for a case, or nil (counted as skipped)
// when anom does not implement it.
func (s *suiteTally) suite(id uint16) *CipherSuite {
	cs, err := Suite(CipherSuiteID(id))
	if err != nil {
		s.skipped++
		return nil
	}
	s.run++
	return cs
}

func (s *suiteTally) done() {
	s.t.Helper()
	s.t.Logf("%s: %d cases run, %d skipped (unsupported cipher suite)", s.file, s.run, s.skipped)
	if s.run == 0 {
		s.t.Fatalf("%s: no case was run", s.file)
	}
}

func TestTreeMathVectors(t *testing.T) {
	type tc struct {
		NLeaves uint32    `json:"n_leaves"`
		NNodes  uint32    `json:"n_nodes"`
		Root    uint32    `json:"root"`
		Left    []*uint32 `json:"left"`
		Right   []*uint32 `json:"right"`
		Parent  []*uint32 `json:"parent"`
		Sibling []*uint32 `json:"sibling"`
	}
	cases := loadVectors[tc](t, "tree-math.json")
	for _, c := range cases {
		if got := nodeWidth(c.NLeaves); got != c.NNodes {
			t.Errorf("n=%d: width %d, want %d", c.NLeaves, got, c.NNodes)
		}
		r := root(c.NLeaves)
		if uint32(r) != c.Root {
			t.Errorf("n=%d: root %d, want %d", c.NLeaves, r, c.Root)
		}
		opt := func(ok bool, v NodeIndex) *uint32 {
			if !ok {
				return nil
			}
			u := uint32(v)
			return &u
		}
		for i := uint32(0); i < c.NNodes; i++ {
			x := NodeIndex(i)
			check := func(name string, got, want *uint32) {
				if !reflect.DeepEqual(got, want) {
					t.Errorf("n=%d %s(%d) = %v, want %v", c.NLeaves, name, i, deref(got), deref(want))
				}
			}
			check("left", opt(!x.isLeaf(), x.left()), c.Left[i])
			check("right", opt(!x.isLeaf(), x.right()), c.Right[i])
			check("parent", opt(x != r, x.parent()), c.Parent[i])
			check("sibling", opt(x != r, x.sibling()), c.Sibling[i])
		}
	}
	t.Logf("tree-math.json: %d cases run", len(cases))
}

func deref(p *uint32) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestDeserializationVectors(t *testing.T) {
	type tc struct {
		Header hexBytes `json:"vlbytes_header"`
		Length uint64   `json:"length"`
	}
	cases := loadVectors[tc](t, "deserialization.json")
	for _, c := range cases {
		r := newReader(c.Header)
		n := r.varint("header")
		if err := r.done("header"); err != nil {
			t.Errorf("%x: %v", c.Header, err)
			continue
		}
		if n != c.Length {
			t.Errorf("%x: length %d, want %d", c.Header, n, c.Length)
		}
		var w writer
		w.varint(n)
		if !reflect.DeepEqual(w.b, []byte(c.Header)) {
			t.Errorf("%d encodes as %x, want %x", n, w.b, c.Header)
		}
	}
	t.Logf("deserialization.json: %d cases run", len(cases))
}

func TestCryptoBasicsVectors(t *testing.T) {
	type tc struct {
		CipherSuite uint16 `json:"cipher_suite"`
		RefHash     struct {
			Label string   `json:"label"`
			Value hexBytes `json:"value"`
			Out   hexBytes `json:"out"`
		} `json:"ref_hash"`
		ExpandWithLabel struct {
			Secret  hexBytes `json:"secret"`
			Label   string   `json:"label"`
			Context hexBytes `json:"context"`
			Length  int      `json:"length"`
			Out     hexBytes `json:"out"`
		} `json:"expand_with_label"`
		DeriveSecret struct {
			Secret hexBytes `json:"secret"`
			Label  string   `json:"label"`
			Out    hexBytes `json:"out"`
		} `json:"derive_secret"`
		DeriveTreeSecret struct {
			Secret     hexBytes `json:"secret"`
			Label      string   `json:"label"`
			Generation uint32   `json:"generation"`
			Length     int      `json:"length"`
			Out        hexBytes `json:"out"`
		} `json:"derive_tree_secret"`
		SignWithLabel struct {
			Priv      hexBytes `json:"priv"`
			Pub       hexBytes `json:"pub"`
			Content   hexBytes `json:"content"`
			Label     string   `json:"label"`
			Signature hexBytes `json:"signature"`
		} `json:"sign_with_label"`
		EncryptWithLabel struct {
			Priv       hexBytes `json:"priv"`
			Pub        hexBytes `json:"pub"`
			Label      string   `json:"label"`
			Context    hexBytes `json:"context"`
			Plaintext  hexBytes `json:"plaintext"`
			KEMOutput  hexBytes `json:"kem_output"`
			Ciphertext hexBytes `json:"ciphertext"`
		} `json:"encrypt_with_label"`
	}
	tally := newTally(t, "crypto-basics.json")
	for _, c := range loadVectors[tc](t, "crypto-basics.json") {
		s := tally.suite(c.CipherSuite)
		if s == nil {
			continue
		}
		eq := func(name string, got, want []byte) {
			if !reflect.DeepEqual(got, want) {
				t.Errorf("suite %d %s: got %x, want %x", c.CipherSuite, name, got, want)
			}
		}
		eq("ref_hash", s.RefHash(c.RefHash.Label, c.RefHash.Value), c.RefHash.Out)
		e := c.ExpandWithLabel
		eq("expand_with_label", s.ExpandWithLabel(e.Secret, e.Label, e.Context, e.Length), e.Out)
		eq("derive_secret", s.DeriveSecret(c.DeriveSecret.Secret, c.DeriveSecret.Label), c.DeriveSecret.Out)
		d := c.DeriveTreeSecret
		eq("derive_tree_secret", s.DeriveTreeSecret(d.Secret, d.Label, d.Generation, d.Length), d.Out)

		sg := c.SignWithLabel
		if err := s.VerifyWithLabel(sg.Pub, sg.Label, sg.Content, sg.Signature); err != nil {
			t.Errorf("suite %d verify_with_label: %v", c.CipherSuite, err)
		}
		sig, err := s.SignWithLabel(SignaturePrivateKey(sg.Priv), sg.Label, sg.Content)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.VerifyWithLabel(sg.Pub, sg.Label, sg.Content, sig); err != nil {
			t.Errorf("suite %d sign then verify: %v", c.CipherSuite, err)
		}
		if err := s.VerifyWithLabel(sg.Pub, sg.Label+"x", sg.Content, sig); err == nil {
			t.Errorf("suite %d: signature verified under another label", c.CipherSuite)
		}

		en := c.EncryptWithLabel
		pt, err := s.DecryptWithLabel(en.Priv, en.Label, en.Context, HPKECiphertext{en.KEMOutput, en.Ciphertext})
		if err != nil {
			t.Errorf("suite %d decrypt_with_label: %v", c.CipherSuite, err)
		}
		eq("decrypt_with_label", pt, en.Plaintext)
		ct, err := s.EncryptWithLabel(en.Pub, en.Label, en.Context, en.Plaintext)
		if err != nil {
			t.Fatal(err)
		}
		pt, err = s.DecryptWithLabel(en.Priv, en.Label, en.Context, ct)
		if err != nil {
			t.Errorf("suite %d encrypt then decrypt: %v", c.CipherSuite, err)
		}
		eq("encrypt then decrypt", pt, en.Plaintext)
	}
	tally.done()
}
