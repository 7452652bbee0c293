//go:build js && wasm

// Command fakeanom stands in for the messenger's WebAssembly in the
// browser tests: it defines the global anom with unlock(pin), which
// records each PIN in globalThis.fakeUnlockCalls and answers as the real
// one does (web/API.md): {result: "ok"} for 1357924680, else
// {result: "wrong"}.
package main

import "syscall/js"

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
	js.Global().Set("anom", js.ValueOf(map[string]any{"unlock": unlock}))
	select {}
}
