package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func TestKeyScheduleVectors(t *testing.T) {
	type epoch struct {
		TreeHash                hexBytes `json:"tree_hash"`
		CommitSecret            hexBytes `json:"commit_secret"`
		PSKSecret               hexBytes `json:"psk_secret"`
		ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
		GroupContext            hexBytes `json:"group_context"`
		JoinerSecret            hexBytes `json:"joiner_secret"`
		WelcomeSecret           hexBytes `json:"welcome_secret"`
		InitSecret              hexBytes `json:"init_secret"`
		SenderDataSecret        hexBytes `json:"sender_data_secret"`
		EncryptionSecret        hexBytes `json:"encryption_secret"`
		ExporterSecret          hexBytes `json:"exporter_secret"`
		EpochAuthenticator      hexBytes `json:"epoch_authenticator"`
		ExternalSecret          hexBytes `json:"external_secret"`
		ConfirmationKey         hexBytes `json:"confirmation_key"`
		MembershipKey           hexBytes `json:"membership_key"`
		ResumptionPSK           hexBytes `json:"resumption_psk"`
		ExternalPub             hexBytes `json:"external_pub"`
		Exporter                struct {
			Label   string   `json:"label"`
			Context hexBytes `json:"context"`
			Length  int      `json:"length"`
			Secret  hexBytes `json:"secret"`
		} `json:"exporter"`
	}
	type tc struct {
		CipherSuite       uint16   `json:"cipher_suite"`
		GroupID           hexBytes `json:"group_id"`
		InitialInitSecret hexBytes `json:"initial_init_secret"`
		Epochs            []epoch  `json:"epochs"`
	}
	const file = "key-schedule.json"
	tally := newTally(t, file)
	epochs := 0
	for _, c := range loadVectors[tc](t, file) {
		s := tally.suite(c.CipherSuite)
		if s == nil {
			continue
		}
		initSecret := []byte(c.InitialInitSecret)
		for i, e := range c.Epochs {
			epochs++
			eq := func(name string, got, want []byte) {
				t.Helper()
				if !bytes.Equal(got, want) {
					t.Errorf("suite %d epoch %d %s: got %x, want %x", c.CipherSuite, i, name, got, want)
				}
			}
			ctx := &GroupContext{
				Version:                 ProtocolMLS10,
				CipherSuite:             s.ID,
				GroupID:                 c.GroupID,
				Epoch:                   uint64(i),
				TreeHash:                e.TreeHash,
				ConfirmedTranscriptHash: e.ConfirmedTranscriptHash,
			}
			eq("group_context", encode(ctx), e.GroupContext)

			joiner := s.joinerSecret(initSecret, e.CommitSecret, ctx)
			eq("joiner_secret", joiner, e.JoinerSecret)
			eq("welcome_secret", s.welcomeSecret(joiner, e.PSKSecret), e.WelcomeSecret)
			es := s.deriveEpoch(joiner, e.PSKSecret, ctx)
			eq("joiner", es.joiner, e.JoinerSecret)
			eq("init_secret", es.init, e.InitSecret)
			eq("sender_data_secret", es.senderData, e.SenderDataSecret)
			eq("encryption_secret", es.encryption, e.EncryptionSecret)
			eq("exporter_secret", es.exporter, e.ExporterSecret)
			eq("epoch_authenticator", es.epochAuthenticator, e.EpochAuthenticator)
			eq("external_secret", es.external, e.ExternalSecret)
			eq("confirmation_key", es.confirmation, e.ConfirmationKey)
			eq("membership_key", es.membership, e.MembershipKey)
			eq("resumption_psk", es.resumption, e.ResumptionPSK)

			priv, pub, err := s.externalKeyPair(es.external)
			if err != nil {
				t.Fatalf("suite %d epoch %d: %v", c.CipherSuite, i, err)
			}
			eq("external_pub", pub, e.ExternalPub)
			if got, err := s.HPKEPublicKey(priv); err != nil || !bytes.Equal(got, pub) {
				t.Errorf("suite %d epoch %d: external private key does not match public (%v)", c.CipherSuite, i, err)
			}
			x := e.Exporter
			eq("exporter.secret", s.exportSecret(es.exporter, x.Label, x.Context, x.Length), x.Secret)

			initSecret = es.init
		}
	}
	tally.done()
	t.Logf("%s: %d epochs checked", file, epochs)
}

// A nil commit or PSK secret is the all-zero vector of length Nh.
func TestScheduleNilIsZero(t *testing.T) {
	s, _ := Suite(SuiteX25519AES128)
	ctx := &GroupContext{Version: ProtocolMLS10, CipherSuite: s.ID, GroupID: []byte("g")}
	zero := make([]byte, s.Nh())
	init := bytes.Repeat([]byte{7}, s.Nh())
	if !bytes.Equal(s.joinerSecret(init, nil, ctx), s.joinerSecret(init, zero, ctx)) {
		t.Error("joinerSecret: nil commit secret differs from zero vector")
	}
	j := s.joinerSecret(init, zero, ctx)
	if !bytes.Equal(s.welcomeSecret(j, nil), s.welcomeSecret(j, zero)) {
		t.Error("welcomeSecret: nil psk secret differs from zero vector")
	}
	if !bytes.Equal(s.deriveEpoch(j, nil, ctx).epochSecret, s.deriveEpoch(j, zero, ctx).epochSecret) {
		t.Error("deriveEpoch: nil psk secret differs from zero vector")
	}
	if !bytes.Equal(s.pskSecret(nil), zero) {
		t.Error("pskSecret of no PSKs is not the zero vector")
	}
	ctx2 := *ctx
	ctx2.Epoch = 1
	if bytes.Equal(s.deriveEpoch(j, nil, ctx).epochSecret, s.deriveEpoch(j, nil, &ctx2).epochSecret) {
		t.Error("epoch secret does not depend on the group context")
	}
}

func TestPSKSecretVectors(t *testing.T) {
	type psk struct {
		ID    hexBytes `json:"psk_id"`
		PSK   hexBytes `json:"psk"`
		Nonce hexBytes `json:"psk_nonce"`
	}
	type tc struct {
		CipherSuite uint16   `json:"cipher_suite"`
		PSKs        []psk    `json:"psks"`
		PSKSecret   hexBytes `json:"psk_secret"`
	}
	const file = "psk_secret.json"
	tally := newTally(t, file)
	for _, c := range loadVectors[tc](t, file) {
		s := tally.suite(c.CipherSuite)
		if s == nil {
			continue
		}
		in := make([]pskInput, len(c.PSKs))
		for i, p := range c.PSKs {
			in[i] = pskInput{
				id:     PreSharedKeyID{Type: PSKExternal, ExternalID: p.ID, Nonce: p.Nonce},
				secret: p.PSK,
			}
		}
		if got := s.pskSecret(in); !bytes.Equal(got, c.PSKSecret) {
			t.Errorf("suite %d, %d psks: got %x, want %x", c.CipherSuite, len(in), got, c.PSKSecret)
		}
		if len(in) > 1 {
			// Order matters (index is part of PSKLabel).
			in[0], in[1] = in[1], in[0]
			if bytes.Equal(s.pskSecret(in), c.PSKSecret) {
				t.Errorf("suite %d: psk_secret unchanged after reordering", c.CipherSuite)
			}
		}
	}
	tally.done()
}

func TestTranscriptHashVectors(t *testing.T) {
	type tc struct {
		CipherSuite     uint16   `json:"cipher_suite"`
		ConfirmationKey hexBytes `json:"confirmation_key"`
		Content         hexBytes `json:"authenticated_content"`
		InterimBefore   hexBytes `json:"interim_transcript_hash_before"`
		ConfirmedAfter  hexBytes `json:"confirmed_transcript_hash_after"`
		InterimAfter    hexBytes `json:"interim_transcript_hash_after"`
	}
	const file = "transcript-hashes.json"
	tally := newTally(t, file)
	for _, c := range loadVectors[tc](t, file) {
		s := tally.suite(c.CipherSuite)
		if s == nil {
			continue
		}
		ac, err := DecodeAuthenticatedContent(c.Content)
		if err != nil {
			t.Fatalf("suite %d: decoding authenticated content: %v", c.CipherSuite, err)
		}
		if ac.Content.ContentType != ContentCommit {
			t.Errorf("suite %d: content type %d, want commit", c.CipherSuite, ac.Content.ContentType)
			continue
		}
		tag := ac.Auth.ConfirmationTag
		if err := s.verifyConfirmationTag(c.ConfirmationKey, c.ConfirmedAfter, tag); err != nil {
			t.Errorf("suite %d: confirmation tag: %v", c.CipherSuite, err)
		}
		bad := append([]byte(nil), tag...)
		bad[0] ^= 1
		if err := s.verifyConfirmationTag(c.ConfirmationKey, c.ConfirmedAfter, bad); !errors.Is(err, ErrBadConfirmationTag) {
			t.Errorf("suite %d: altered tag: got %v, want ErrBadConfirmationTag", c.CipherSuite, err)
		}
		confirmed := s.confirmedTranscriptHash(c.InterimBefore, ac)
		if !bytes.Equal(confirmed, c.ConfirmedAfter) {
			t.Errorf("suite %d confirmed: got %x, want %x", c.CipherSuite, confirmed, c.ConfirmedAfter)
		}
		if got := s.interimTranscriptHash(confirmed, tag); !bytes.Equal(got, c.InterimAfter) {
			t.Errorf("suite %d interim: got %x, want %x", c.CipherSuite, got, c.InterimAfter)
		}
		if !bytes.Equal(s.confirmationTag(c.ConfirmationKey, confirmed), tag) {
			t.Errorf("suite %d: recomputed confirmation tag differs", c.CipherSuite)
		}
	}
	tally.done()
}

func TestWelcomeVectors(t *testing.T) {
	type tc struct {
		CipherSuite uint16   `json:"cipher_suite"`
		InitPriv    hexBytes `json:"init_priv"`
		SignerPub   hexBytes `json:"signer_pub"`
		KeyPackage  hexBytes `json:"key_package"`
		Welcome     hexBytes `json:"welcome"`
	}
	const file = "welcome.json"
	tally := newTally(t, file)
	for _, c := range loadVectors[tc](t, file) {
		s := tally.suite(c.CipherSuite)
		if s == nil {
			continue
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Errorf("suite %d: "+format, append([]any{c.CipherSuite}, args...)...)
		}
		kpMsg, err := DecodeMLSMessage(c.KeyPackage)
		if err != nil || kpMsg.KeyPackage == nil {
			fail("decoding key package: %v", err)
			continue
		}
		wMsg, err := DecodeMLSMessage(c.Welcome)
		if err != nil || wMsg.Welcome == nil {
			fail("decoding welcome: %v", err)
			continue
		}
		w := wMsg.Welcome
		ref := s.keyPackageRef(kpMsg.KeyPackage)

		gs, err := s.decryptGroupSecrets(c.InitPriv, ref, w)
		if err != nil {
			fail("%v", err)
			continue
		}
		welcomeSecret := s.welcomeSecret(gs.JoinerSecret, nil)
		gi, err := s.decryptGroupInfo(welcomeSecret, w)
		if err != nil {
			fail("%v", err)
			continue
		}
		if err := s.verifyGroupInfo(c.SignerPub, gi); err != nil {
			fail("%v", err)
		}
		es := s.deriveEpoch(gs.JoinerSecret, nil, &gi.GroupContext)
		if err := s.verifyConfirmationTag(es.confirmation, gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag); err != nil {
			fail("group info confirmation tag: %v", err)
		}

		// Negative cases: unknown key package, wrong init key, tampered
		// ciphertext, wrong signer, tampered group info.
		otherRef := append([]byte(nil), ref...)
		otherRef[0] ^= 1
		if _, err := s.decryptGroupSecrets(c.InitPriv, otherRef, w); !errors.Is(err, ErrWelcomeNotForUs) {
			fail("unknown ref: got %v, want ErrWelcomeNotForUs", err)
		}
		otherPriv, _, err := s.GenerateKeyPair(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.decryptGroupSecrets(otherPriv, ref, w); !errors.Is(err, ErrDecrypt) {
			fail("wrong init key: got %v, want ErrDecrypt", err)
		}
		tampered := *w
		tampered.EncryptedGroupInfo = append([]byte(nil), w.EncryptedGroupInfo...)
		tampered.EncryptedGroupInfo[len(tampered.EncryptedGroupInfo)-1] ^= 1
		if _, err := s.decryptGroupInfo(welcomeSecret, &tampered); !errors.Is(err, ErrDecrypt) {
			fail("tampered group info: got %v, want ErrDecrypt", err)
		}
		// The group info ciphertext is the HPKE context of the group secrets.
		if _, err := s.decryptGroupSecrets(c.InitPriv, ref, &tampered); !errors.Is(err, ErrDecrypt) {
			fail("group secrets under altered group info: got %v, want ErrDecrypt", err)
		}
		_, otherPub, err := s.GenerateSignatureKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.verifyGroupInfo(otherPub, gi); !errors.Is(err, ErrBadSignature) {
			fail("wrong signer: got %v, want ErrBadSignature", err)
		}
		gi2 := *gi
		gi2.Signer++
		if err := s.verifyGroupInfo(c.SignerPub, &gi2); !errors.Is(err, ErrBadSignature) {
			fail("altered signer index: got %v, want ErrBadSignature", err)
		}

		// Round trip: re-encrypting the decrypted group info reproduces the
		// vector's ciphertext (deterministic key and nonce).
		ct, err := s.encryptGroupInfo(welcomeSecret, gi)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ct, w.EncryptedGroupInfo) {
			fail("re-encrypted group info differs from the vector")
		}
	}
	tally.done()
}

// signGroupInfo and verifyGroupInfo round trip; a Welcome built with
// encryptGroupInfo and EncryptWithLabel opens with the decrypt helpers.
func TestWelcomeRoundTrip(t *testing.T) {
	for _, id := range []CipherSuiteID{SuiteX25519AES128, SuiteX25519ChaCha} {
		s, _ := Suite(id)
		sigPriv, sigPub, err := s.GenerateSignatureKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		initPriv, initPub, err := s.GenerateKeyPair(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ctx := GroupContext{Version: ProtocolMLS10, CipherSuite: id, GroupID: []byte("group"), Epoch: 3,
			TreeHash: bytes.Repeat([]byte{1}, s.Nh()), ConfirmedTranscriptHash: bytes.Repeat([]byte{2}, s.Nh())}
		joiner := bytes.Repeat([]byte{9}, s.Nh())
		psks := []pskInput{{id: PreSharedKeyID{Type: PSKExternal, ExternalID: []byte("id"), Nonce: make([]byte, s.Nh())}, secret: []byte("psk value")}}
		pskSecret := s.pskSecret(psks)
		es := s.deriveEpoch(joiner, pskSecret, &ctx)
		gi := &GroupInfo{GroupContext: ctx, ConfirmationTag: s.confirmationTag(es.confirmation, ctx.ConfirmedTranscriptHash), Signer: 2}
		if err := s.signGroupInfo(sigPriv, gi); err != nil {
			t.Fatal(err)
		}
		welcomeSecret := s.welcomeSecret(joiner, pskSecret)
		egi, err := s.encryptGroupInfo(welcomeSecret, gi)
		if err != nil {
			t.Fatal(err)
		}
		gs := &GroupSecrets{JoinerSecret: joiner, PSKs: []PreSharedKeyID{psks[0].id}}
		ref := []byte("some key package ref")
		ct, err := s.EncryptWithLabel(initPub, "Welcome", egi, encode(gs))
		if err != nil {
			t.Fatal(err)
		}
		w := &Welcome{CipherSuite: id, EncryptedGroupInfo: egi, Secrets: []EncryptedGroupSecrets{
			{NewMember: []byte("someone else"), EncryptedGroupSecrets: ct},
			{NewMember: ref, EncryptedGroupSecrets: ct},
		}}
		got, err := s.decryptGroupSecrets(initPriv, ref, w)
		if err != nil {
			t.Fatalf("suite %d: %v", id, err)
		}
		if !bytes.Equal(got.JoinerSecret, joiner) || len(got.PSKs) != 1 {
			t.Fatalf("suite %d: group secrets did not round trip", id)
		}
		gotGI, err := s.decryptGroupInfo(s.welcomeSecret(got.JoinerSecret, pskSecret), w)
		if err != nil {
			t.Fatalf("suite %d: %v", id, err)
		}
		if err := s.verifyGroupInfo(sigPub, gotGI); err != nil {
			t.Errorf("suite %d: %v", id, err)
		}
		if err := s.verifyConfirmationTag(es.confirmation, gotGI.GroupContext.ConfirmedTranscriptHash, gotGI.ConfirmationTag); err != nil {
			t.Errorf("suite %d: %v", id, err)
		}
		// Without the PSK the welcome secret is wrong and the group info
		// does not open.
		if _, err := s.decryptGroupInfo(s.welcomeSecret(joiner, nil), w); !errors.Is(err, ErrDecrypt) {
			t.Errorf("suite %d: group info opened without its psk: %v", id, err)
		}
		// A Welcome for another suite is refused.
		other := *w
		other.CipherSuite = 2
		if _, err := s.decryptGroupSecrets(initPriv, ref, &other); !errors.Is(err, ErrInvalidWelcome) {
			t.Errorf("suite %d: foreign suite: got %v, want ErrInvalidWelcome", id, err)
		}
	}
}

func BenchmarkDeriveEpoch(b *testing.B) {
	s, _ := Suite(SuiteX25519AES128)
	ctx := &GroupContext{Version: ProtocolMLS10, CipherSuite: s.ID, GroupID: []byte("group"),
		TreeHash: make([]byte, 32), ConfirmedTranscriptHash: make([]byte, 32)}
	init := make([]byte, 32)
	for b.Loop() {
		j := s.joinerSecret(init, nil, ctx)
		es := s.deriveEpoch(j, nil, ctx)
		init = es.init
	}
}
