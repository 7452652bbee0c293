package escrow

import (
	"errors"
	"testing"
	"time"
)

func TestCheckWarrant(t *testing.T) {
	f := newFixture(t, 2, 3)
	good := f.warrant(t, nil)
	unknownIssuer := f.warrant(t, func(w *Warrant) { w.Issuer = "Nobody" })
	// Signed by the Court key but naming the Compliance issuer.
	wrongKey := f.warrant(t, func(w *Warrant) { w.Issuer = "Compliance" })
	tampered := f.warrant(t, nil)
	tampered.Warrant = &Warrant{}
	*tampered.Warrant = *good.Warrant
	tampered.Warrant.Scope = Scope{Groups: [][]byte{[]byte("everything")}}
	badSig := f.warrant(t, nil)
	badSig.Signature = append([]byte{}, badSig.Signature...)
	badSig.Signature[0] ^= 1

	tests := []struct {
		name    string
		sw      *SignedWarrant
		now     time.Time
		revoked map[string]bool
		want    error
	}{
		{"valid", good, t0, nil, nil},
		{"valid, other ids revoked", good, t0, map[string]bool{"W-2026-000": true}, nil},
		{"valid at issue time", good, good.Warrant.Issued, nil, nil},
		{"expired", good, t0.Add(25 * time.Hour), nil, ErrWarrantExpired},
		{"expired exactly at not-after", good, good.Warrant.NotAfter, nil, ErrWarrantExpired},
		{"not yet valid", good, good.Warrant.Issued.Add(-time.Millisecond), nil, ErrWarrantNotYetValid},
		{"revoked", good, t0, map[string]bool{"W-2026-001": true}, ErrWarrantRevoked},
		{"unknown issuer", unknownIssuer, t0, nil, ErrUnknownIssuer},
		{"signed by another issuer's key", wrongKey, t0, nil, ErrBadSignature},
		{"scope widened after signing", tampered, t0, nil, ErrBadSignature},
		{"flipped signature bit", badSig, t0, nil, ErrBadSignature},
		{"no warrant", nil, t0, nil, ErrInvalidWarrant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(f.policy, tt.sw, tt.now, tt.revoked)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check = %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestWarrantValidation(t *testing.T) {
	f := newFixture(t, 2, 3)
	tests := map[string]func(*Warrant){
		"empty scope":          func(w *Warrant) { w.Scope = Scope{} },
		"empty time range":     func(w *Warrant) { w.To = w.From },
		"reversed time range":  func(w *Warrant) { w.From, w.To = w.To, w.From },
		"expires before issue": func(w *Warrant) { w.NotAfter = w.Issued },
		"no reason":            func(w *Warrant) { w.Reason = "" },
		"long reason":          func(w *Warrant) { w.Reason = string(make([]byte, MaxReason+1)) },
		"empty id":             func(w *Warrant) { w.ID = "" },
		"long username":        func(w *Warrant) { w.Scope.Usernames = []string{string(bytesOf('a', MaxUsername+1))} },
		"empty device":         func(w *Warrant) { w.Scope.Devices = [][]byte{{}} },
		"time before 1970":     func(w *Warrant) { w.From = time.Unix(-10, 0) },
	}
	for name, edit := range tests {
		t.Run(name, func(t *testing.T) {
			w := *f.warrant(t, nil).Warrant
			edit(&w)
			if _, err := SignWarrant(&w, f.issuer); err == nil {
				t.Fatal("SignWarrant accepted an invalid warrant")
			}
		})
	}
	sw := f.warrant(t, func(w *Warrant) {
		w.Scope = Scope{Devices: [][]byte{[]byte("dev-bob")}, Usernames: []string{"alice", "carol"},
			Groups: [][]byte{[]byte("g1"), []byte("g2")}}
		w.CaseRef = ""
	})
	b, _ := sw.MarshalBinary()
	got, err := ParseSignedWarrant(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(f.policy, got, t0, nil); err != nil {
		t.Fatalf("decoded warrant: %v", err)
	}
	if len(got.Warrant.Scope.Groups) != 2 || got.Warrant.CaseRef != "" {
		t.Fatalf("decoded scope %+v", got.Warrant.Scope)
	}
}

func TestInScope(t *testing.T) {
	f := newFixture(t, 2, 3)
	w := f.warrant(t, func(w *Warrant) {
		w.Scope = Scope{Devices: [][]byte{[]byte("dev-bob")}, Usernames: []string{"alice"},
			Groups: [][]byte{[]byte("watched-group")}}
	}).Warrant
	tests := []struct {
		name     string
		dev, grp string
		user     string
		at       time.Time
		want     bool
	}{
		{"username", "dev-carol", "g", "alice", t0, true},
		{"device", "dev-bob", "g", "bob", t0, true},
		{"group", "dev-carol", "watched-group", "carol", t0, true},
		{"no match", "dev-carol", "g", "carol", t0, false},
		{"unknown username does not match", "dev-carol", "g", "", t0, false},
		{"username case differs", "dev-carol", "g", "Alice", t0, false},
		{"at range start", "dev-bob", "g", "bob", w.From, true},
		{"just before range", "dev-bob", "g", "bob", w.From.Add(-time.Millisecond), false},
		{"at range end (exclusive)", "dev-bob", "g", "bob", w.To, false},
		{"long after", "dev-bob", "g", "bob", t0.Add(48 * time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := f.meta(tt.dev, tt.grp, 1, tt.at)
			if got := InScope(w, &m, tt.user); got != tt.want {
				t.Fatalf("InScope = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	f := newFixture(t, 2, 3)
	w := f.warrant(t, func(w *Warrant) { w.Scope = Scope{Usernames: []string{"alice"}} }).Warrant
	tests := []struct {
		name             string
		user             string
		sent, serverTime time.Time
		want             bool
	}{
		{"both times in range", "alice", t0, t0, true},
		{"out of scope", "bob", t0, t0, false},
		{"server time at range end", "alice", t0, w.To, false},
		{"server time before range", "alice", t0, w.From.Add(-time.Millisecond), false},
		{"sent before range", "alice", w.From.Add(-time.Millisecond), t0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.record(t, f.meta("dev-alice", "g", 1, tt.sent), "hi", tt.serverTime)
			if got := Covers(w, rec, tt.user); got != tt.want {
				t.Fatalf("Covers = %v, want %v", got, tt.want)
			}
		})
	}
}
