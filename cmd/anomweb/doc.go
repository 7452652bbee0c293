// Command anomweb is the client of the web app: the anom client library
// compiled to WebAssembly (GOOS=js GOARCH=wasm), with the device state in
// IndexedDB (anom/client/idbstorage). It sets a global object anom whose
// promise-returning methods the app's JavaScript calls; web/API.md is the
// contract.
package main
