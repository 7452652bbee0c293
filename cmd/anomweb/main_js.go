//go:build js

package main

import (
	"syscall/js"

	"anom/client/idbstorage"
)

func main() {
	a := newApp(idbstorage.New(dbName))
	js.Global().Set("anom", a.object())
	// The page may wait for the object with a function anomReady.
	if f := js.Global().Get("anomReady"); f.Type() == js.TypeFunction {
		f.Invoke()
	}
	select {}
}
