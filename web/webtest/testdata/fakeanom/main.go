//go:build js && wasm

// Command fakeanom stands in for the messenger's WebAssembly in the
// browser tests: it defines the global anom with unlock(pin), which
// records each PIN in globalThis.fakeUnlockCalls and answers as the real
// one does (web/API.md): {result: "ok"} for 1357924680, else
// {result: "wrong"}; verifyRelease(manifest, proof, root, head?), which
// checks a release with webrelease.VerifySeen, the check the real one's
// client.VerifyAppReleaseSeen makes, answering as the real one does with
// no device unlocked (a refusal rejects with code "release-refused");
// logHead() (no device: size 0) and setAppRelease (noted in
// globalThis.fakeAppRelease).
package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"syscall/js"

	"anom/internal/translog"
	"anom/internal/webrelease"
)

func reject(code, msg string) js.Value {
	e := js.Global().Get("Error").New(msg)
	e.Set("code", code)
	return js.Global().Get("Promise").Call("reject", e)
}

func main() {
	calls := js.Global().Get("Array").New()
	js.Global().Set("fakeUnlockCalls", calls)
	unlock := js.FuncOf(func(_ js.Value, args []js.Value) any {
		pin := ""
		if len(args) > 0 {
			pin = args[0].String()
		}
		calls.Call("push", pin)
		res := map[string]any{"result": "wrong", "triesLeft": 9}
		if pin == "1357924680" {
			res = map[string]any{"result": "ok", "username": "alice"}
		}
		return js.Global().Get("Promise").Call("resolve", js.ValueOf(res))
	})
	verifyRelease := js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) < 3 || args[0].Type() != js.TypeString || args[1].Type() != js.TypeString || args[2].Type() != js.TypeString {
			return reject("bad-argument", "verifyRelease(manifest, proof, root)")
		}
		root, err := hex.DecodeString(args[2].String())
		if err != nil || len(root) != ed25519.PublicKeySize {
			return reject("bad-argument", "root: none given and no device unlocked")
		}
		var seen translog.SignedTreeHead
		if len(args) > 3 && args[3].Type() == js.TypeString && args[3].String() != "" {
			b, err := base64.StdEncoding.DecodeString(args[3].String())
			if err != nil {
				return reject("bad-argument", "head: want base64")
			}
			if err := seen.UnmarshalBinary(b); err != nil {
				return reject("release-refused", "the tree head the device saw: "+err.Error())
			}
		}
		v, err := webrelease.VerifySeen(root, []byte(args[0].String()), []byte(args[1].String()), seen)
		if errors.Is(err, webrelease.ErrRefused) {
			return reject("release-refused", err.Error())
		}
		if err != nil {
			return reject("error", err.Error())
		}
		head, err := v.Head.MarshalBinary()
		if err != nil {
			return reject("error", err.Error())
		}
		return js.Global().Get("Promise").Call("resolve", js.ValueOf(map[string]any{
			"ok": true, "version": v.Version, "logIndex": v.LogIndex, "loggedAt": v.LoggedAt, "treeSize": v.TreeSize,
			"treeHead": base64.StdEncoding.EncodeToString(head), "root": args[2].String(), "rootFrom": "pinned",
		}))
	})
	logHead := js.FuncOf(func(js.Value, []js.Value) any {
		return js.Global().Get("Promise").Call("resolve", js.ValueOf(map[string]any{"size": 0}))
	})
	setAppRelease := js.FuncOf(func(_ js.Value, args []js.Value) any {
		told := js.Global().Get("Array").New()
		for _, a := range args {
			told.Call("push", a)
		}
		js.Global().Set("fakeAppRelease", told)
		return js.Global().Get("Promise").Call("resolve", true)
	})
	js.Global().Set("anom", js.ValueOf(map[string]any{"unlock": unlock, "verifyRelease": verifyRelease,
		"logHead": logHead, "setAppRelease": setAppRelease}))
	select {}
}
