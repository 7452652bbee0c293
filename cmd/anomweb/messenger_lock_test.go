//go:build !js

package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/escrowtest"
	"anom/internal/server"
	"anom/internal/wasmtest"
)

// TestMessengerUIIdleLock: the messenger locks itself after the idle time
// (globalThis.anomIdleMs, the tests' hook, set to 3 s): activity keeps it
// unlocked, and 3 s without a touch or a key put back the calculator, the
// device locked. Settings offer the user's choices, 1 to 30 minutes, 2 by
// default, kept in localStorage.
func TestMessengerUIIdleLock(t *testing.T) {
	wasmtest.Chromium(t)
	u := newUINet(t)
	alice := uiBrowser(t, u.webNet, u.base)
	uiActivate(alice, nil, u.invite, u.code(t), "alice")

	// The shell's (app.js) idle lock, spied on: it gets the messenger's
	// idle time.
	eval[any](alice, `(() => { const s = anomShell; globalThis.__shellIdle = [];
		window.anomShell = {lock: s.lock, setIdleLock(x) { __shellIdle.push(x); s.setIdleLock(x); }}; })()`)

	// Settings: the user's choices and the default.
	eval[any](alice, `__t.q('button[aria-label="Settings"]').click()`)
	uiWait(alice, `!!document.querySelector('dialog #idle-min')`, "the settings")
	type idle struct {
		Options []string `json:"options"`
		Value   string   `json:"value"`
	}
	got := eval[idle](alice, `({options: [...__t.q('dialog #idle-min').options].map((o) => o.value), value: __t.q('dialog #idle-min').value})`)
	if strings.Join(got.Options, ",") != "1,2,5,10,30" || got.Value != "2" {
		t.Errorf("the idle setting offers %q, set to %q; want 1,2,5,10,30 minutes, 2", got.Options, got.Value)
	}
	eval[any](alice, `__t.q('dialog #idle-min').value = '5'; __t.q('dialog #idle-min').dispatchEvent(new Event('change'))`)
	if v := eval[string](alice, `localStorage.getItem('calc.idle')`); v != "5" {
		t.Errorf("the idle setting kept %q, want 5", v)
	}
	eval[any](alice, `__t.q('dialog .close').click()`)
	if got := eval[[]float64](alice, `__shellIdle`); !slices.Equal(got, []float64{300}) {
		t.Errorf("the shell's idle lock was set to %v s, want 300 (the 5 minutes chosen)", got)
	}

	// The tests' hook takes over from the next unlock.
	const idleMs = 3000
	eval[any](alice, fmt.Sprintf(`globalThis.anomIdleMs = %d; __t.q('button.lock').click()`, idleMs))
	uiWait(alice, `!document.getElementById('messenger') && !__t.q('#calculator').hidden`, "the calculator after Lock")
	eval[any](alice, fmt.Sprintf(`__t.pin(%s)`, js(webPIN)))
	uiWait(alice, `__t.ready()`, "alice unlocked with a 3 s idle time")
	if got := eval[[]float64](alice, `__shellIdle`); !slices.Equal(got, []float64{300, 3}) {
		t.Errorf("the shell's idle lock was set to %v s, want 300 then 3", got)
	}
	// Keys pressed every half second for twice the idle time keep it
	// unlocked.
	var idleFrom time.Time // the last key
	for range 2 * idleMs / 500 {
		if !eval[bool](alice, `__t.ready()`) {
			t.Fatal("the messenger locked although keys were pressed")
		}
		eval[any](alice, `document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Shift'}))`)
		idleFrom = time.Now()
		time.Sleep(500 * time.Millisecond)
	}
	// Then nothing: it locks after the idle time (checked every second).
	uiWait(alice, `!document.getElementById('messenger') && !__t.q('#calculator').hidden && __t.q('#display').textContent === '0'`, "the calculator after the idle time")
	if d := time.Since(idleFrom); d < idleMs*time.Millisecond-100*time.Millisecond || d > idleMs*time.Millisecond+3*time.Second {
		t.Errorf("locked after %v idle, want about %d ms", d, idleMs)
	}
	uiWait(alice, `anom.status().then((s) => s.state === 'locked')`, "alice's device locked after the idle time")
	// The PIN opens it again.
	eval[any](alice, fmt.Sprintf(`__t.pin(%s)`, js(webPIN)))
	uiWait(alice, `__t.ready()`, "alice unlocked after the idle lock")

	// The shell's own lock (its idle timer) takes the messenger off the
	// screen as well.
	eval[any](alice, `anomShell.lock()`)
	uiWait(alice, `!document.getElementById('messenger') && !__t.q('#calculator').hidden && __t.q('#display').textContent === '0'`, "the calculator after the shell's lock")
	uiWait(alice, `anom.status().then((s) => s.state === 'locked')`, "alice's device locked by the shell")
}

// TestMessengerUIEscrowPolicyChange: the server restarts with version 2
// of the escrow policy while the page is open; on connecting again the
// page shows the loud banner that the policy CHANGED, naming version 2,
// and the policy's details show it.
func TestMessengerUIEscrowPolicyChange(t *testing.T) {
	wasmtest.Chromium(t)
	u := newUINet(t)
	alice := uiBrowser(t, u.webNet, u.base)
	uiActivate(alice, nil, u.invite, u.code(t), "alice")
	uiWait(alice, `!__t.q('#banner').hidden && __t.q('#banner').textContent.includes('Escrow policy verified') && __t.q('#banner').textContent.includes('policy v1')`, "the first verification's banner")
	eval[any](alice, `__t.q('#banner button').click()`)

	u.o.down()
	uiWait(alice, `__t.q('.conn').classList.contains('off')`, "alice seeing the server gone")
	u.restart(t, func(c *server.Config, root *identity.RootKey) {
		c.EscrowPolicy = escrowtest.SignedPolicy(t, root.Signer(), 2)
	})
	u.o = u.serveHandler(t, u.app, u.o.addr)
	uiWait(alice, `!__t.q('#banner').hidden && __t.q('#banner').classList.contains('loud') && __t.q('#banner').textContent.includes('THE ESCROW POLICY CHANGED') && __t.q('#banner').textContent.includes('policy v2')`, "the banner of the changed policy")
	if b := eval[string](alice, `__t.q('#banner').textContent`); !strings.Contains(b, "2 of 3 custodians") {
		t.Errorf("the banner of the changed policy: %q", b)
	}
	if v := eval[int](alice, `anom.escrowPolicy().then((p) => p.version)`); v != 2 {
		t.Errorf("the policy the page verified is version %d, want 2", v)
	}
}
