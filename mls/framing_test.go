package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
)

func TestSecretTreeVectors(t *testing.T) {
	type gen struct {
		Generation       uint32   `json:"generation"`
		HandshakeKey     hexBytes `json:"handshake_key"`
		HandshakeNonce   hexBytes `json:"handshake_nonce"`
		ApplicationKey   hexBytes `json:"application_key"`
		ApplicationNonce hexBytes `json:"application_nonce"`
	}
	type tc struct {
		CipherSuite uint16 `json:"cipher_suite"`
		SenderData  struct {
			Secret     hexBytes `json:"sender_data_secret"`
			Ciphertext hexBytes `json:"ciphertext"`
			Key        hexBytes `json:"key"`
			Nonce      hexBytes `json:"nonce"`
		} `json:"sender_data"`
		EncryptionSecret hexBytes `json:"encryption_secret"`
		Leaves           [][]gen  `json:"leaves"`
	}
	tally := newTally(t, "secret-tree.json")
	for _, c := range loadVectors[tc](t, "secret-tree.json") {
		s := tally.suite(c.CipherSuite)
		if s == nil {
			continue
		}
		name := fmt.Sprintf("suite %d, %d leaves", c.CipherSuite, len(c.Leaves))
		key, nonce := s.senderDataKeyNonce(c.SenderData.Secret, c.SenderData.Ciphertext)
		if !bytes.Equal(key, c.SenderData.Key) || !bytes.Equal(nonce, c.SenderData.Nonce) {
			t.Errorf("%s: sender data key/nonce %x/%x, want %x/%x", name, key, nonce, c.SenderData.Key, c.SenderData.Nonce)
		}
		// Visit leaves in reverse so lazy derivation starts from a
		// different side than the vectors' order.
		st := newSecretTree(s, c.EncryptionSecret, uint32(len(c.Leaves)))
		for i := len(c.Leaves) - 1; i >= 0; i-- {
			for _, g := range c.Leaves[i] {
				for _, k := range []struct {
					ct         ContentType
					key, nonce []byte
				}{
					{ContentCommit, g.HandshakeKey, g.HandshakeNonce},
					{ContentApplication, g.ApplicationKey, g.ApplicationNonce},
				} {
					key, nonce, err := st.get(LeafIndex(i), k.ct, g.Generation)
					if err != nil {
						t.Errorf("%s: leaf %d gen %d type %d: %v", name, i, g.Generation, k.ct, err)
						continue
					}
					if !bytes.Equal(key, k.key) || !bytes.Equal(nonce, k.nonce) {
						t.Errorf("%s: leaf %d gen %d type %d: key/nonce %x/%x, want %x/%x",
							name, i, g.Generation, k.ct, key, nonce, k.key, k.nonce)
					}
				}
			}
		}
		// Sender side: a fresh tree's next() yields generation 0 first.
		if len(c.Leaves[0]) > 0 && c.Leaves[0][0].Generation == 0 {
			st := newSecretTree(s, c.EncryptionSecret, uint32(len(c.Leaves)))
			key, nonce, g, err := st.next(0, ContentProposal)
			if err != nil || g != 0 || !bytes.Equal(key, c.Leaves[0][0].HandshakeKey) || !bytes.Equal(nonce, c.Leaves[0][0].HandshakeNonce) {
				t.Errorf("%s: next(0, proposal) = %x/%x gen %d err %v", name, key, nonce, g, err)
			}
		}
	}
	tally.done()
}

func TestSecretTreeReceiverWindow(t *testing.T) {
	s, _ := Suite(SuiteX25519AES128)
	secret := bytes.Repeat([]byte{7}, s.Nh())
	cfg := secretTreeConfig{MaxForward: 10, MaxRetained: 3}
	type step struct {
		gen  uint32
		want error
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{0, nil}, {1, nil}, {2, nil}}},
		{"reuse", []step{{0, nil}, {0, ErrGenerationReused}}},
		{"reuse skipped then used", []step{{2, nil}, {1, nil}, {1, ErrGenerationReused}, {0, nil}, {2, ErrGenerationReused}}},
		{"forward window edge", []step{{10, nil}, {21, nil}}},
		{"too far", []step{{11, ErrGenerationTooFar}, {0, nil}}},
		{"too far after progress", []step{{5, nil}, {17, ErrGenerationTooFar}, {16, nil}}},
		{"expired after eviction", []step{{5, nil}, {0, ErrGenerationExpired}, {1, ErrGenerationExpired}, {2, nil}, {4, nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newSecretTreeConfig(s, secret, 4, cfg)
			for i, sp := range tt.steps {
				_, _, err := st.get(2, ContentApplication, sp.gen)
				if !errors.Is(err, sp.want) || (sp.want == nil && err != nil) {
					t.Fatalf("step %d: get(gen %d) = %v, want %v", i, sp.gen, err, sp.want)
				}
			}
		})
	}
}

func TestSecretTreeKeysMatchAcrossOrder(t *testing.T) {
	s, _ := Suite(SuiteX25519ChaCha)
	secret := bytes.Repeat([]byte{9}, s.Nh())
	sender := newSecretTree(s, secret, 8)
	var keys [][]byte
	for g := uint32(0); g < 6; g++ {
		k, _, gen, err := sender.next(5, ContentApplication)
		if err != nil || gen != g {
			t.Fatalf("next: gen %d err %v", gen, err)
		}
		keys = append(keys, k)
	}
	recv := newSecretTree(s, secret, 8)
	for _, g := range []uint32{3, 0, 5, 1, 4, 2} {
		k, _, err := recv.get(5, ContentApplication, g)
		if err != nil || !bytes.Equal(k, keys[g]) {
			t.Fatalf("get gen %d: %x, %v; want %x", g, k, err, keys[g])
		}
	}
	// Handshake and application ratchets are independent.
	k, _, err := recv.get(5, ContentProposal, 0)
	if err != nil || bytes.Equal(k, keys[0]) {
		t.Fatalf("handshake gen 0: %x, %v", k, err)
	}
}

func TestSecretTreeBadInput(t *testing.T) {
	s, _ := Suite(SuiteX25519AES128)
	st := newSecretTree(s, make([]byte, s.Nh()), 4)
	if _, _, err := st.get(4, ContentApplication, 0); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("leaf outside tree: %v", err)
	}
	if _, _, _, err := st.next(9, ContentCommit); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("sender leaf outside tree: %v", err)
	}
	if _, _, err := st.get(0, ContentType(9), 0); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("unknown content type: %v", err)
	}
	empty := newSecretTree(s, make([]byte, s.Nh()), 0)
	if _, _, err := empty.get(0, ContentApplication, 0); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("empty tree: %v", err)
	}
}

func TestSecretTreeLazyAndDeletes(t *testing.T) {
	s, _ := Suite(SuiteX25519AES128)
	const n = 1 << 14 // a 10,000-member group's tree
	st := newSecretTree(s, bytes.Repeat([]byte{1}, s.Nh()), n)
	if _, _, err := st.get(9999, ContentApplication, 0); err != nil {
		t.Fatal(err)
	}
	// Only the copath of leaf 9999 holds secrets: one per level.
	if got := len(st.nodes); got != 14 {
		t.Errorf("%d node secrets held after one leaf, want 14", got)
	}
	if _, ok := st.nodes[LeafIndex(9999).node()]; ok {
		t.Error("leaf secret kept after its ratchets were derived")
	}
	for x := range st.nodes {
		if isAncestor(x, LeafIndex(9999).node()) {
			t.Errorf("ancestor %d secret kept", x)
		}
	}
	if _, _, err := st.get(9998, ContentApplication, 0); err != nil {
		t.Fatal(err)
	}
	if got := len(st.nodes); got != 13 {
		t.Errorf("%d node secrets after sibling, want 13", got)
	}
	if len(st.leaves) != 2 {
		t.Errorf("%d leaf ratchets derived, want 2", len(st.leaves))
	}
}

// Message protection.

type protectionCase struct {
	CipherSuite             uint16   `json:"cipher_suite"`
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	TreeHash                hexBytes `json:"tree_hash"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	SignaturePriv           hexBytes `json:"signature_priv"`
	SignaturePub            hexBytes `json:"signature_pub"`
	EncryptionSecret        hexBytes `json:"encryption_secret"`
	SenderDataSecret        hexBytes `json:"sender_data_secret"`
	MembershipKey           hexBytes `json:"membership_key"`
	Proposal                hexBytes `json:"proposal"`
	ProposalPub             hexBytes `json:"proposal_pub"`
	ProposalPriv            hexBytes `json:"proposal_priv"`
	Commit                  hexBytes `json:"commit"`
	CommitPub               hexBytes `json:"commit_pub"`
	CommitPriv              hexBytes `json:"commit_priv"`
	Application             hexBytes `json:"application"`
	ApplicationPriv         hexBytes `json:"application_priv"`
}

// bodyBytes is the encoding of the content's raw value: the Proposal, the
// Commit or the application data.
func bodyBytes(c *FramedContent) []byte {
	switch c.ContentType {
	case ContentProposal:
		return c.Proposal.Encode()
	case ContentCommit:
		return c.Commit.Encode()
	}
	return c.Application
}

func TestMessageProtectionVectors(t *testing.T) {
	tally := newTally(t, "message-protection.json")
	for _, c := range loadVectors[protectionCase](t, "message-protection.json") {
		s := tally.suite(c.CipherSuite)
		if s == nil {
			continue
		}
		ctx := &GroupContext{
			Version: ProtocolMLS10, CipherSuite: CipherSuiteID(c.CipherSuite), GroupID: c.GroupID,
			Epoch: c.Epoch, TreeHash: c.TreeHash, ConfirmedTranscriptHash: c.ConfirmedTranscriptHash,
		}
		prop, err := DecodeProposal(c.Proposal)
		if err != nil {
			t.Fatalf("suite %d: proposal: %v", c.CipherSuite, err)
		}
		commit, err := DecodeCommit(c.Commit)
		if err != nil {
			t.Fatalf("suite %d: commit: %v", c.CipherSuite, err)
		}
		kinds := []struct {
			name      string
			raw       []byte
			pub, priv []byte
			content   FramedContent
		}{
			{"proposal", c.Proposal, c.ProposalPub, c.ProposalPriv, FramedContent{ContentType: ContentProposal, Proposal: prop}},
			{"commit", c.Commit, c.CommitPub, c.CommitPriv, FramedContent{ContentType: ContentCommit, Commit: commit}},
			{"application", c.Application, nil, c.ApplicationPriv, FramedContent{ContentType: ContentApplication, Application: c.Application}},
		}
		for _, k := range kinds {
			name := fmt.Sprintf("suite %d %s", c.CipherSuite, k.name)
			check := func(what string, ac *AuthenticatedContent) {
				t.Helper()
				if err := verifyFramedContent(s, c.SignaturePub, ac, ctx); err != nil {
					t.Errorf("%s %s: %v", name, what, err)
				}
				if got := bodyBytes(&ac.Content); !bytes.Equal(got, k.raw) {
					t.Errorf("%s %s: content %x, want %x", name, what, got, k.raw)
				}
				if ac.Content.Sender != (Sender{Type: SenderMember, LeafIndex: 1}) {
					t.Errorf("%s %s: sender %+v", name, what, ac.Content.Sender)
				}
			}
			fresh := func() *AuthenticatedContent {
				ac := &AuthenticatedContent{Content: k.content}
				ac.Content.GroupID = c.GroupID
				ac.Content.Epoch = c.Epoch
				ac.Content.Sender = Sender{Type: SenderMember, LeafIndex: 1}
				if k.content.ContentType == ContentCommit {
					ac.Auth.ConfirmationTag = s.MAC([]byte("confirmation"), c.Commit)
				}
				return ac
			}

			// PublicMessage from the vector.
			if k.pub != nil {
				msg, err := DecodeMLSMessage(k.pub)
				if err != nil || msg.WireFormat != WirePublicMessage {
					t.Fatalf("%s pub: decoding: %v", name, err)
				}
				ac, err := unprotectPublic(s, msg.Public, c.MembershipKey, ctx)
				if err != nil {
					t.Errorf("%s pub: %v", name, err)
				} else {
					check("pub", ac)
				}
			}
			// Protect as a PublicMessage and back.
			ac := fresh()
			ac.WireFormat = WirePublicMessage
			if err := signFramedContent(s, SignaturePrivateKey(c.SignaturePriv), ac, ctx); err != nil {
				t.Fatalf("%s: signing: %v", name, err)
			}
			pm, err := protectPublic(s, ac, c.MembershipKey, ctx)
			if k.content.ContentType == ContentApplication {
				if !errors.Is(err, ErrPublicApplication) {
					t.Errorf("%s: protecting application as PublicMessage: err %v, want ErrPublicApplication", name, err)
				}
			} else if err != nil {
				t.Errorf("%s: protectPublic: %v", name, err)
			} else {
				msg, err := DecodeMLSMessage((&MLSMessage{Version: ProtocolMLS10, WireFormat: WirePublicMessage, Public: pm}).Encode())
				if err != nil {
					t.Fatalf("%s: re-decoding public message: %v", name, err)
				}
				back, err := unprotectPublic(s, msg.Public, c.MembershipKey, ctx)
				if err != nil {
					t.Errorf("%s: unprotectPublic after protect: %v", name, err)
				} else {
					check("pub round trip", back)
				}
			}

			// PrivateMessage from the vector, with a fresh secret tree.
			msg, err := DecodeMLSMessage(k.priv)
			if err != nil || msg.WireFormat != WirePrivateMessage {
				t.Fatalf("%s priv: decoding: %v", name, err)
			}
			recv := newSecretTree(s, c.EncryptionSecret, 2)
			got, _, err := unprotectPrivate(s, msg.Private, recv, c.SenderDataSecret)
			if err != nil {
				t.Errorf("%s priv: %v", name, err)
			} else {
				check("priv", got)
				if _, _, err := unprotectPrivate(s, msg.Private, recv, c.SenderDataSecret); !errors.Is(err, ErrGenerationReused) {
					t.Errorf("%s priv replay: err %v, want ErrGenerationReused", name, err)
				}
			}

			// Protect as a PrivateMessage and back, sender and receiver
			// each with a fresh tree.
			ac = fresh()
			ac.WireFormat = WirePrivateMessage
			if err := signFramedContent(s, SignaturePrivateKey(c.SignaturePriv), ac, ctx); err != nil {
				t.Fatalf("%s: signing: %v", name, err)
			}
			sender := newSecretTree(s, c.EncryptionSecret, 2)
			priv, _, err := protectPrivate(s, ac, sender, c.SenderDataSecret, 13, rand.Reader)
			if err != nil {
				t.Fatalf("%s: protectPrivate: %v", name, err)
			}
			msg, err = DecodeMLSMessage((&MLSMessage{Version: ProtocolMLS10, WireFormat: WirePrivateMessage, Private: priv}).Encode())
			if err != nil {
				t.Fatalf("%s: re-decoding private message: %v", name, err)
			}
			got, _, err = unprotectPrivate(s, msg.Private, newSecretTree(s, c.EncryptionSecret, 2), c.SenderDataSecret)
			if err != nil {
				t.Errorf("%s: unprotectPrivate after protect: %v", name, err)
			} else {
				check("priv round trip", got)
				if !bytes.Equal(got.Encode(), ac.Encode()) {
					t.Errorf("%s: private round trip changed the AuthenticatedContent", name)
				}
			}
		}
	}
	tally.done()
}

// framingFixture is a two-member group in one epoch for the error tests
// and benchmarks.
type framingFixture struct {
	s                  *CipherSuite
	ctx                *GroupContext
	priv               SignaturePrivateKey
	pub                []byte
	encSecret, sdSec   []byte
	membershipKey      []byte
	sender, receiver   *secretTree
	senderLeaf, leaves uint32
}

func newFramingFixture(t testing.TB, leaves uint32) *framingFixture {
	s, _ := Suite(SuiteX25519AES128)
	priv, pub, err := s.GenerateSignatureKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &framingFixture{
		s: s, priv: priv, pub: pub, leaves: leaves, senderLeaf: 1,
		ctx: &GroupContext{Version: ProtocolMLS10, CipherSuite: s.ID, GroupID: []byte("group"), Epoch: 7,
			TreeHash: bytes.Repeat([]byte{1}, 32), ConfirmedTranscriptHash: bytes.Repeat([]byte{2}, 32)},
		encSecret:     bytes.Repeat([]byte{3}, 32),
		sdSec:         bytes.Repeat([]byte{4}, 32),
		membershipKey: bytes.Repeat([]byte{5}, 32),
	}
	f.sender = newSecretTree(s, f.encSecret, leaves)
	f.receiver = newSecretTree(s, f.encSecret, leaves)
	return f
}

func (f *framingFixture) content(wf WireFormat, ct ContentType, data []byte) *AuthenticatedContent {
	ac := &AuthenticatedContent{WireFormat: wf, Content: FramedContent{
		GroupID: f.ctx.GroupID, Epoch: f.ctx.Epoch, Sender: Sender{Type: SenderMember, LeafIndex: LeafIndex(f.senderLeaf)},
		AuthenticatedData: []byte("ad"), ContentType: ct,
	}}
	switch ct {
	case ContentApplication:
		ac.Content.Application = data
	case ContentProposal:
		ac.Content.Proposal = &Proposal{Type: ProposalRemove, Remove: &RemoveProposal{Removed: 0}}
	case ContentCommit:
		ac.Content.Commit = &Commit{}
		ac.Auth.ConfirmationTag = bytes.Repeat([]byte{6}, 32)
	}
	return ac
}

func (f *framingFixture) private(t testing.TB, data []byte) *PrivateMessage {
	t.Helper()
	ac := f.content(WirePrivateMessage, ContentApplication, data)
	if err := signFramedContent(f.s, f.priv, ac, f.ctx); err != nil {
		t.Fatal(err)
	}
	m, _, err := protectPrivate(f.s, ac, f.sender, f.sdSec, 0, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestUnprotectPrivateRejects(t *testing.T) {
	f := newFramingFixture(t, 4)
	m := f.private(t, []byte("hello"))

	tampered := *m
	tampered.Ciphertext = append([]byte(nil), m.Ciphertext...)
	tampered.Ciphertext[len(tampered.Ciphertext)-1] ^= 1
	// A tampered tag changes the sender-data sample only if the sample
	// covers it; flip inside the sample too.
	tampered.Ciphertext[0] ^= 1
	if _, _, err := unprotectPrivate(f.s, &tampered, f.receiver, f.sdSec); !errors.Is(err, ErrDecrypt) {
		t.Errorf("tampered ciphertext: %v", err)
	}
	badAD := *m
	badAD.AuthenticatedData = []byte("other")
	if _, _, err := unprotectPrivate(f.s, &badAD, f.receiver, f.sdSec); !errors.Is(err, ErrDecrypt) {
		t.Errorf("changed authenticated data: %v", err)
	}
	if _, _, err := unprotectPrivate(f.s, m, f.receiver, bytes.Repeat([]byte{9}, 32)); !errors.Is(err, ErrDecrypt) {
		t.Errorf("wrong sender data secret: %v", err)
	}
	// The failed attempts did not consume the key: the genuine message opens.
	ac, _, err := unprotectPrivate(f.s, m, f.receiver, f.sdSec)
	if err != nil {
		t.Fatalf("genuine message after forgeries: %v", err)
	}
	if err := verifyFramedContent(f.s, f.pub, ac, f.ctx); err != nil {
		t.Errorf("signature: %v", err)
	}
	if err := verifyFramedContent(f.s, f.pub, ac, &GroupContext{Epoch: 8}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("signature under another context: %v", err)
	}
	if _, _, err := unprotectPrivate(f.s, m, f.receiver, f.sdSec); !errors.Is(err, ErrGenerationReused) {
		t.Errorf("replay: %v", err)
	}

	// A sender leaf outside the receiver's tree.
	big := newFramingFixture(t, 8)
	big.senderLeaf = 6
	out := big.private(t, []byte("x"))
	small := newSecretTree(big.s, big.encSecret, 4)
	if _, _, err := unprotectPrivate(big.s, out, small, big.sdSec); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("sender outside tree: %v", err)
	}
	badType := *m
	badType.ContentType = 0
	if _, _, err := unprotectPrivate(f.s, &badType, f.receiver, f.sdSec); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("content type 0: %v", err)
	}
}

func TestProtectRefuses(t *testing.T) {
	f := newFramingFixture(t, 2)
	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"application as public", func() error {
			_, err := protectPublic(f.s, f.content(WirePublicMessage, ContentApplication, []byte("x")), f.membershipKey, f.ctx)
			return err
		}, ErrPublicApplication},
		{"application public received", func() error {
			ac := f.content(WirePublicMessage, ContentApplication, []byte("x"))
			_, err := unprotectPublic(f.s, &PublicMessage{Content: ac.Content, Auth: ac.Auth}, f.membershipKey, f.ctx)
			return err
		}, ErrPublicApplication},
		{"public signed as private", func() error {
			_, err := protectPublic(f.s, f.content(WirePrivateMessage, ContentProposal, nil), f.membershipKey, f.ctx)
			return err
		}, ErrInvalidMessage},
		{"private signed as public", func() error {
			_, _, err := protectPrivate(f.s, f.content(WirePublicMessage, ContentProposal, nil), f.sender, f.sdSec, 0, rand.Reader)
			return err
		}, ErrInvalidMessage},
		{"private from non-member", func() error {
			ac := f.content(WirePrivateMessage, ContentProposal, nil)
			ac.Content.Sender = Sender{Type: SenderExternal}
			_, _, err := protectPrivate(f.s, ac, f.sender, f.sdSec, 0, rand.Reader)
			return err
		}, ErrInvalidMessage},
		{"commit without confirmation tag", func() error {
			ac := f.content(WirePrivateMessage, ContentCommit, nil)
			ac.Auth.ConfirmationTag = nil
			_, _, err := protectPrivate(f.s, ac, f.sender, f.sdSec, 0, rand.Reader)
			return err
		}, ErrInvalidMessage},
		{"member signing without context", func() error {
			return signFramedContent(f.s, f.priv, f.content(WirePublicMessage, ContentProposal, nil), nil)
		}, ErrNoGroupContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(); !errors.Is(err, tt.want) {
				t.Errorf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestUnprotectPublicRejects(t *testing.T) {
	f := newFramingFixture(t, 2)
	ac := f.content(WirePublicMessage, ContentCommit, nil)
	if err := signFramedContent(f.s, f.priv, ac, f.ctx); err != nil {
		t.Fatal(err)
	}
	pm, err := protectPublic(f.s, ac, f.membershipKey, f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unprotectPublic(f.s, pm, f.membershipKey, f.ctx); err != nil {
		t.Fatalf("genuine: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(m *PublicMessage, key []byte, ctx *GroupContext) ([]byte, *GroupContext)
		want   error
	}{
		{"wrong membership key", func(m *PublicMessage, key []byte, ctx *GroupContext) ([]byte, *GroupContext) {
			return bytes.Repeat([]byte{8}, 32), ctx
		}, ErrMembershipTag},
		{"changed confirmation tag", func(m *PublicMessage, key []byte, ctx *GroupContext) ([]byte, *GroupContext) {
			m.Auth.ConfirmationTag = bytes.Repeat([]byte{0}, 32)
			return key, ctx
		}, ErrMembershipTag},
		{"changed sender", func(m *PublicMessage, key []byte, ctx *GroupContext) ([]byte, *GroupContext) {
			m.Content.Sender.LeafIndex = 0
			return key, ctx
		}, ErrMembershipTag},
		{"missing tag", func(m *PublicMessage, key []byte, ctx *GroupContext) ([]byte, *GroupContext) {
			m.MembershipTag = nil
			return key, ctx
		}, ErrMembershipTag},
		{"other epoch", func(m *PublicMessage, key []byte, ctx *GroupContext) ([]byte, *GroupContext) {
			c := *ctx
			c.Epoch++
			return key, &c
		}, ErrInvalidMessage},
		{"other group", func(m *PublicMessage, key []byte, ctx *GroupContext) ([]byte, *GroupContext) {
			c := *ctx
			c.GroupID = []byte("other")
			return key, &c
		}, ErrInvalidMessage},
		{"no context", func(m *PublicMessage, key []byte, ctx *GroupContext) ([]byte, *GroupContext) {
			return key, nil
		}, ErrNoGroupContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := *pm
			m.Auth.ConfirmationTag = append([]byte(nil), pm.Auth.ConfirmationTag...)
			key, ctx := tt.mutate(&m, f.membershipKey, f.ctx)
			if _, err := unprotectPublic(f.s, &m, key, ctx); !errors.Is(err, tt.want) {
				t.Errorf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPrivateContentPadding(t *testing.T) {
	body := FramedContent{ContentType: ContentApplication, Application: []byte("hi")}
	auth := FramedContentAuthData{Signature: []byte("sig")}
	for _, pad := range []int{0, 1, 100} {
		var w writer
		marshalPrivateContent(&w, &body, &auth, pad)
		c, a, n, err := decodePrivateContent(ContentApplication, w.b)
		if err != nil || n != pad || !bytes.Equal(c.Application, body.Application) || !bytes.Equal(a.Signature, auth.Signature) {
			t.Errorf("padding %d: got %q %q pad %d err %v", pad, c.Application, a.Signature, n, err)
		}
		if pad > 0 {
			w.b[len(w.b)-1] = 1
			if _, _, _, err := decodePrivateContent(ContentApplication, w.b); !errors.Is(err, ErrInvalidMessage) {
				t.Errorf("padding %d with a non-zero byte: %v", pad, err)
			}
		}
	}
	if _, _, _, err := decodePrivateContent(ContentCommit, []byte{0x00}); err == nil {
		t.Error("truncated commit content decoded")
	}
}

func FuzzDecodePrivateContent(f *testing.F) {
	seed := func(c FramedContent, auth FramedContentAuthData, pad int) {
		var w writer
		marshalPrivateContent(&w, &c, &auth, pad)
		f.Add(uint8(c.ContentType), w.b)
	}
	seed(FramedContent{ContentType: ContentApplication, Application: []byte("hello")}, FramedContentAuthData{Signature: make([]byte, 64)}, 7)
	seed(FramedContent{ContentType: ContentProposal, Proposal: &Proposal{Type: ProposalRemove, Remove: &RemoveProposal{Removed: 2}}},
		FramedContentAuthData{Signature: []byte{1, 2}}, 0)
	seed(FramedContent{ContentType: ContentCommit, Commit: &Commit{}}, FramedContentAuthData{Signature: []byte{1}, ConfirmationTag: make([]byte, 32)}, 3)
	f.Add(uint8(2), []byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, ct uint8, b []byte) {
		c, auth, pad, err := decodePrivateContent(ContentType(ct), b)
		if err != nil {
			return
		}
		var w writer
		marshalPrivateContent(&w, &c, &auth, pad)
		if !bytes.Equal(w.b, b) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", w.b, b)
		}
	})
}

// BenchmarkProtectUnprotect1KiB signs, encrypts, decrypts and verifies a
// 1 KiB application message: the whole per-message cost for a sender and
// one receiver.
func BenchmarkProtectUnprotect1KiB(b *testing.B) {
	f := newFramingFixture(b, 2)
	data := bytes.Repeat([]byte{'a'}, 1024)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		ac := f.content(WirePrivateMessage, ContentApplication, data)
		if err := signFramedContent(f.s, f.priv, ac, f.ctx); err != nil {
			b.Fatal(err)
		}
		m, _, err := protectPrivate(f.s, ac, f.sender, f.sdSec, 0, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		got, _, err := unprotectPrivate(f.s, m, f.receiver, f.sdSec)
		if err != nil {
			b.Fatal(err)
		}
		if err := verifyFramedContent(f.s, f.pub, got, f.ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncryptDecrypt1KiB is the same without the signature, to show
// the framing and key-schedule cost apart from Ed25519.
func BenchmarkEncryptDecrypt1KiB(b *testing.B) {
	f := newFramingFixture(b, 2)
	data := bytes.Repeat([]byte{'a'}, 1024)
	ac := f.content(WirePrivateMessage, ContentApplication, data)
	if err := signFramedContent(f.s, f.priv, ac, f.ctx); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		m, _, err := protectPrivate(f.s, ac, f.sender, f.sdSec, 0, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := unprotectPrivate(f.s, m, f.receiver, f.sdSec); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSignContentOneBuffer checks that the SignContent built in one buffer
// (buildSignContent, used for every framed content signature) is byte for
// byte the encoding of SignContent{label, content} made the plain way, for
// contents whose length prefix takes one, two and four bytes, and that a
// signature over it verifies with the public VerifyWithLabel.
func TestSignContentOneBuffer(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 65, 1000, 16383, 16384, 70000} {
		content := bytes.Repeat([]byte{0xa5}, n)
		for _, hint := range []int{0, n, n + 100} {
			got := buildSignContent("label", hint, func(w *writer) { w.raw(content) })
			if want := signContent("label", content); !bytes.Equal(got, want) {
				t.Fatalf("content of %d bytes, hint %d: got %x..., want %x...", n, hint, got[:min(len(got), 24)], want[:min(len(want), 24)])
			}
		}
	}

	s, _ := Suite(SuiteX25519AES128)
	priv, pub, err := s.GenerateSignatureKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ctx := &GroupContext{
		Version: ProtocolMLS10, CipherSuite: s.ID, GroupID: []byte("group"), Epoch: 3,
		TreeHash: bytes.Repeat([]byte{1}, 32), ConfirmedTranscriptHash: bytes.Repeat([]byte{2}, 32),
		Extensions: []Extension{{Type: 0xff00, Data: bytes.Repeat([]byte{3}, 300)}},
	}
	for _, n := range []int{0, 10, 1024, 20000} {
		for _, ac := range []*AuthenticatedContent{
			{WireFormat: WirePrivateMessage, Content: FramedContent{
				GroupID: ctx.GroupID, Epoch: ctx.Epoch, Sender: Sender{Type: SenderMember, LeafIndex: 2},
				AuthenticatedData: bytes.Repeat([]byte{4}, n/3), ContentType: ContentApplication, Application: bytes.Repeat([]byte{5}, n),
			}},
			{WireFormat: WirePublicMessage, Content: FramedContent{
				GroupID: ctx.GroupID, Epoch: ctx.Epoch, Sender: Sender{Type: SenderExternal, SenderIndex: 1},
				ContentType: ContentProposal, Proposal: &Proposal{Type: ProposalRemove, Remove: &RemoveProposal{Removed: LeafIndex(n)}},
			}},
		} {
			if want := signContent(framedContentTBSLabel, ac.tbs(ctx)); !bytes.Equal(ac.signContent(ctx), want) {
				t.Fatalf("sender type %d, %d bytes: the one-buffer SignContent differs from the plain encoding", ac.Content.Sender.Type, n)
			}
			if err := signFramedContent(s, priv, ac, ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.VerifyWithLabel(pub, framedContentTBSLabel, ac.tbs(ctx), ac.Auth.Signature); err != nil {
				t.Fatalf("sender type %d, %d bytes: %v", ac.Content.Sender.Type, n, err)
			}
		}
	}
}

// TestSenderDataInfo checks the sender-data KDFLabel built without
// allocations against the general ExpandWithLabel encoding, for samples of
// every length up to 64 bytes (a 64-byte sample needs a two-byte varint).
func TestSenderDataInfo(t *testing.T) {
	for n := 0; n <= 64; n++ {
		sample := bytes.Repeat([]byte{7}, n)
		for _, label := range []string{"key", "nonce"} {
			var want writer
			want.u16(16)
			want.opaque([]byte("MLS 1.0 " + label))
			want.opaque(sample)
			if got := senderDataInfo(nil, label, sample, 16); !bytes.Equal(got, want.b) {
				t.Fatalf("label %q, %d-byte sample: got %x, want %x", label, n, got, want.b)
			}
		}
	}
}
