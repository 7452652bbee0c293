package mls

import (
	"bytes"
	"errors"
	"testing"
)

// roundTrip decodes b with dec, re-encodes with enc and compares.
func TestMessagesVectors(t *testing.T) {
	type tc struct {
		Welcome        hexBytes `json:"mls_welcome"`
		GroupInfo      hexBytes `json:"mls_group_info"`
		KeyPackage     hexBytes `json:"mls_key_package"`
		RatchetTree    hexBytes `json:"ratchet_tree"`
		GroupSecrets   hexBytes `json:"group_secrets"`
		Add            hexBytes `json:"add_proposal"`
		Update         hexBytes `json:"update_proposal"`
		Remove         hexBytes `json:"remove_proposal"`
		PSK            hexBytes `json:"pre_shared_key_proposal"`
		ReInit         hexBytes `json:"re_init_proposal"`
		ExternalInit   hexBytes `json:"external_init_proposal"`
		GCE            hexBytes `json:"group_context_extensions_proposal"`
		Commit         hexBytes `json:"commit"`
		PubApplication hexBytes `json:"public_message_application"`
		PubProposal    hexBytes `json:"public_message_proposal"`
		PubCommit      hexBytes `json:"public_message_commit"`
		Private        hexBytes `json:"private_message"`
	}
	cases := loadVectors[tc](t, "messages.json")
	mlsMsg := func(wf WireFormat) func([]byte) ([]byte, error) {
		return func(b []byte) ([]byte, error) {
			m, err := DecodeMLSMessage(b)
			if err != nil {
				return nil, err
			}
			if m.WireFormat != wf {
				return nil, errors.New("wrong wire format")
			}
			return m.Encode(), nil
		}
	}
	proposalBody := func(pt ProposalType) func([]byte) ([]byte, error) {
		return func(b []byte) ([]byte, error) {
			p := &Proposal{Type: pt}
			r := newReader(b)
			p.unmarshalBody(r)
			if err := r.done("proposal"); err != nil {
				return nil, err
			}
			var w writer
			p.marshalBody(&w)
			return w.b, nil
		}
	}
	for i, c := range cases {
		checks := []struct {
			name string
			in   []byte
			rt   func([]byte) ([]byte, error)
		}{
			{"mls_welcome", c.Welcome, mlsMsg(WireWelcome)},
			{"mls_group_info", c.GroupInfo, mlsMsg(WireGroupInfo)},
			{"mls_key_package", c.KeyPackage, mlsMsg(WireKeyPackage)},
			{"ratchet_tree", c.RatchetTree, func(b []byte) ([]byte, error) {
				n, err := DecodeRatchetTree(b)
				if err != nil {
					return nil, err
				}
				return EncodeRatchetTree(n), nil
			}},
			{"group_secrets", c.GroupSecrets, func(b []byte) ([]byte, error) {
				g, err := DecodeGroupSecrets(b)
				if err != nil {
					return nil, err
				}
				return g.Encode(), nil
			}},
			{"add_proposal", c.Add, proposalBody(ProposalAdd)},
			{"update_proposal", c.Update, proposalBody(ProposalUpdate)},
			{"remove_proposal", c.Remove, proposalBody(ProposalRemove)},
			{"pre_shared_key_proposal", c.PSK, proposalBody(ProposalPSK)},
			{"re_init_proposal", c.ReInit, proposalBody(ProposalReInit)},
			{"external_init_proposal", c.ExternalInit, proposalBody(ProposalExternalInit)},
			{"group_context_extensions_proposal", c.GCE, proposalBody(ProposalGroupContextExtensions)},
			{"commit", c.Commit, func(b []byte) ([]byte, error) {
				m, err := DecodeCommit(b)
				if err != nil {
					return nil, err
				}
				return m.Encode(), nil
			}},
			{"public_message_application", c.PubApplication, mlsMsg(WirePublicMessage)},
			{"public_message_proposal", c.PubProposal, mlsMsg(WirePublicMessage)},
			{"public_message_commit", c.PubCommit, mlsMsg(WirePublicMessage)},
			{"private_message", c.Private, mlsMsg(WirePrivateMessage)},
		}
		for _, ch := range checks {
			if len(ch.in) == 0 {
				t.Errorf("case %d %s: empty", i, ch.name)
				continue
			}
			out, err := ch.rt(ch.in)
			if err != nil {
				t.Errorf("case %d %s: %v", i, ch.name, err)
				continue
			}
			if !bytes.Equal(out, ch.in) {
				t.Errorf("case %d %s: re-encoding differs", i, ch.name)
			}
		}
	}
	t.Logf("messages.json: %d cases run", len(cases))
}

func TestDecodeStrict(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   []byte
		want error
	}{
		{"trailing", []byte{0x00, 0x01, 0x00, 0x05, 0xff}, ErrTruncated},
		{"non-minimal varint", []byte{0x40, 0x01, 0x00}, ErrNonMinimalInt},
		{"bad varint prefix", []byte{0xc0, 0, 0, 0}, ErrInvalidVarint},
		{"oversize vector", []byte{0x05, 0x01}, ErrOversizeVector},
	} {
		r := newReader(tt.in)
		r.opaque("x")
		err := r.done("x")
		if !errors.Is(err, tt.want) {
			// "trailing" reads an opaque of length 0 then has bytes left.
			if tt.name == "trailing" && errors.Is(err, ErrTrailingBytes) {
				continue
			}
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := DecodeMLSMessage([]byte{0, 1, 0, 9}); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("unknown wire format: %v", err)
	}
	if _, err := DecodeMLSMessage([]byte{0, 2, 0, 1}); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("unknown version: %v", err)
	}
}

// seedMessages adds every message of the vectors to a fuzz corpus.
func seedMessages(f *testing.F) {
	type tc struct {
		Welcome     hexBytes `json:"mls_welcome"`
		GroupInfo   hexBytes `json:"mls_group_info"`
		KeyPackage  hexBytes `json:"mls_key_package"`
		PubCommit   hexBytes `json:"public_message_commit"`
		Private     hexBytes `json:"private_message"`
		PubProposal hexBytes `json:"public_message_proposal"`
	}
	for i, c := range loadVectors[tc](f, "messages.json") {
		if i >= 20 {
			break
		}
		for _, b := range [][]byte{c.Welcome, c.GroupInfo, c.KeyPackage, c.PubCommit, c.Private, c.PubProposal} {
			f.Add([]byte(b))
		}
	}
}

// fuzzRoundTrip checks that whatever decodes re-encodes to the same bytes.
func fuzzRoundTrip(t *testing.T, b []byte, dec func([]byte) ([]byte, error)) {
	out, err := dec(b)
	if err != nil {
		return
	}
	if !bytes.Equal(out, b) {
		t.Fatalf("decoded value re-encodes differently:\n in  %x\n out %x", b, out)
	}
}

func FuzzDecodeMLSMessage(f *testing.F) {
	seedMessages(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzRoundTrip(t, b, func(b []byte) ([]byte, error) {
			m, err := DecodeMLSMessage(b)
			if err != nil {
				return nil, err
			}
			return m.Encode(), nil
		})
	})
}

func FuzzDecodeRatchetTree(f *testing.F) {
	type tc struct {
		RatchetTree hexBytes `json:"ratchet_tree"`
	}
	for i, c := range loadVectors[tc](f, "messages.json") {
		if i < 10 {
			f.Add([]byte(c.RatchetTree))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzRoundTrip(t, b, func(b []byte) ([]byte, error) {
			n, err := DecodeRatchetTree(b)
			if err != nil {
				return nil, err
			}
			return EncodeRatchetTree(n), nil
		})
	})
}

func FuzzDecodeGroupSecrets(f *testing.F) {
	type tc struct {
		GroupSecrets hexBytes `json:"group_secrets"`
		Commit       hexBytes `json:"commit"`
	}
	for i, c := range loadVectors[tc](f, "messages.json") {
		if i < 10 {
			f.Add([]byte(c.GroupSecrets))
			f.Add([]byte(c.Commit))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzRoundTrip(t, b, func(b []byte) ([]byte, error) {
			g, err := DecodeGroupSecrets(b)
			if err != nil {
				return nil, err
			}
			return g.Encode(), nil
		})
		fuzzRoundTrip(t, b, func(b []byte) ([]byte, error) {
			c, err := DecodeCommit(b)
			if err != nil {
				return nil, err
			}
			return c.Encode(), nil
		})
	})
}

// FuzzDecoders runs every standalone decoder of the package on the same
// input (the first byte picks the decoder) and checks that whatever
// decodes re-encodes to the same bytes.
func FuzzDecoders(f *testing.F) {
	type tc struct {
		KeyPackage hexBytes `json:"mls_key_package"`
		GroupInfo  hexBytes `json:"mls_group_info"`
		Commit     hexBytes `json:"commit"`
		Remove     hexBytes `json:"remove_proposal"`
	}
	for i, c := range loadVectors[tc](f, "messages.json") {
		if i >= 5 {
			break
		}
		for sel, b := range [][]byte{c.KeyPackage[4:], c.GroupInfo[4:], append([]byte{0, 3}, c.Remove...), c.Commit} {
			f.Add(append([]byte{byte(sel)}, b...))
		}
	}
	decoders := []func([]byte) ([]byte, error){
		func(b []byte) ([]byte, error) { v, err := DecodeKeyPackage(b); return enc(v, err) },
		func(b []byte) ([]byte, error) { v, err := DecodeGroupInfo(b); return enc(v, err) },
		func(b []byte) ([]byte, error) { v, err := DecodeProposal(b); return enc(v, err) },
		func(b []byte) ([]byte, error) { v, err := DecodeCommit(b); return enc(v, err) },
		func(b []byte) ([]byte, error) { v, err := DecodeUpdatePath(b); return enc(v, err) },
		func(b []byte) ([]byte, error) { v, err := DecodeGroupContext(b); return enc(v, err) },
		func(b []byte) ([]byte, error) { v, err := DecodeAuthenticatedContent(b); return enc(v, err) },
		func(b []byte) ([]byte, error) { v, err := DecodeRequiredCapabilities(b); return enc(&v, err) },
		func(b []byte) ([]byte, error) {
			v, err := DecodeExternalSenders(b)
			if err != nil {
				return nil, err
			}
			return EncodeExternalSenders(v), nil
		},
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		dec := decoders[int(b[0])%len(decoders)]
		fuzzRoundTrip(t, b[1:], dec)
	})
}

func enc[T marshaler](v T, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	return encode(v), nil
}
