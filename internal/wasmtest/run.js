// Runs the Go program test.wasm (or the one named by ?wasm=) with the
// arguments of ?args= (JSON), collecting its output for wasmtest.
"use strict";
(() => {
	const state = { out: "", exit: null };
	globalThis.__wasmtest = state;
	const dec = new TextDecoder();
	globalThis.fs.writeSync = (fd, buf) => {
		state.out += dec.decode(buf, { stream: true });
		return buf.length;
	};
	const q = new URLSearchParams(location.search);
	const go = new Go();
	const wasm = q.get("wasm") || "test.wasm";
	go.argv = [wasm].concat(JSON.parse(q.get("args") || "[]"));
	go.exit = (code) => { state.exit = code; };
	WebAssembly.instantiateStreaming(fetch(wasm), go.importObject)
		.then((r) => go.run(r.instance))
		.catch((e) => { state.out += "\nwasmtest: loading " + wasm + ": " + e + "\n"; state.exit = 99; });
})();
