//go:build !js

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "anomweb is the web app's client and runs only in a browser: build it with GOOS=js GOARCH=wasm (see web/API.md)")
	os.Exit(2)
}
