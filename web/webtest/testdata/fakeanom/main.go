//go:build js && wasm

// Command fakeanom stands in for the messenger's WebAssembly in the
// browser tests: it defines the global anom with unlock(pin), which
// records each PIN in globalThis.fakeUnlockCalls and accepts 1357924680.
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
		return js.Global().Get("Promise").Call("resolve", pin == "1357924680")
	})
	js.Global().Set("anom", js.ValueOf(map[string]any{"unlock": unlock}))
	select {}
}
