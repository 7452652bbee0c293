// The page of anomweb's browser test: loads anom.wasm, records the events
// of anom.onEvent in __events, and has helpers the test calls.
"use strict";
globalThis.__events = [];
globalThis.anomReady = () => {
	anom.onEvent((e) => { e.pageMs = Date.now(); __events.push(e); });
	globalThis.__anomLoaded = true;
};
{
	const go = new Go();
	WebAssembly.instantiateStreaming(fetch("anom.wasm"), go.importObject)
		.then((r) => go.run(r.instance))
		.catch((e) => { globalThis.__anomLoadError = String(e); });
}

// timed runs the async fn and resolves to {ms, value}.
globalThis.timed = async (fn) => {
	const t0 = performance.now();
	const value = await fn();
	return { ms: performance.now() - t0, value };
};

// benchSend sends n texts of size bytes to groupId one after the other
// (encrypt, seal the escrow record, send, store) and resolves to the
// milliseconds per send, p50 and p95 in ms, and whether any was pending.
globalThis.benchSend = async (groupId, size, n) => {
	const text = "x".repeat(size);
	const ms = [];
	let pending = 0;
	for (let i = 0; i < n; i++) {
		const t0 = performance.now();
		const r = await anom.send(groupId, text);
		ms.push(performance.now() - t0);
		if (r.pending) pending++;
	}
	const total = ms.reduce((a, b) => a + b, 0);
	ms.sort((a, b) => a - b);
	return { mean: total / n, p50: ms[Math.floor(n * 0.5)], p95: ms[Math.min(n - 1, Math.floor(n * 0.95))], pending };
};

// dumpDB reads every record of the device's IndexedDB database and
// resolves to {records, bytes (base64 of all values concatenated), keys}.
globalThis.dumpDB = () => new Promise((resolve, reject) => {
	const open = indexedDB.open("anom-device");
	open.onerror = () => reject(open.error);
	open.onsuccess = () => {
		const db = open.result;
		const names = Array.from(db.objectStoreNames);
		if (names.length === 0) { db.close(); resolve({ records: 0, bytes: "", keys: [] }); return; }
		const tx = db.transaction(names, "readonly");
		const out = { records: 0, parts: [], keys: [] };
		for (const n of names) {
			const req = tx.objectStore(n).openCursor();
			req.onsuccess = () => {
				const c = req.result;
				if (!c) return;
				out.records++;
				out.keys.push(n + ":" + JSON.stringify(c.key));
				if (c.value instanceof Uint8Array) out.parts.push(c.value);
				c.continue();
			};
		}
		tx.oncomplete = () => {
			db.close();
			let s = "";
			for (const p of out.parts) for (let i = 0; i < p.length; i += 0x8000) s += String.fromCharCode.apply(null, p.subarray(i, i + 0x8000));
			resolve({ records: out.records, bytes: btoa(s), keys: out.keys });
		};
		tx.onerror = () => reject(tx.error);
	};
});

// toB64 and fromB64 carry bytes between the test and the page.
globalThis.toB64 = (u) => {
	let s = "";
	for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000));
	return btoa(s);
};
globalThis.fromB64 = (b) => Uint8Array.from(atob(b), (c) => c.charCodeAt(0));
