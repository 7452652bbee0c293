// The update gate, the page's side (sw.js is the worker's): the service
// worker stages a new release; the messenger's WebAssembly checks it
// against the network's transparency log (anom.verifyRelease, the Go
// client library's check, web/API.md); only a verified release is
// activated. The first release is taken on first use (web/README.md).
//
// For the messenger's UI (an "about" line), globalThis.anomRelease:
//   info()  → {version, logIndex, loggedAt, treeSize, root, verified}
//             the release this page runs (logIndex null until verified);
//   check() → {updated, version, staged, refused, error} runs the gate.
// Events on window: "anom:release" (detail: info()) after each check,
// "anom:release-refused" (detail: {version, error}) when a release is
// refused.

let messenger = Promise.resolve(null);

// call sends msg to the service worker and resolves to its answer,
// {state, error}.
async function call(msg) {
  const reg = await navigator.serviceWorker.ready;
  const worker = navigator.serviceWorker.controller || reg.active;
  return new Promise((resolve, reject) => {
    const ch = new MessageChannel();
    const timer = setTimeout(() => reject(new Error('the service worker does not answer')), 60000);
    ch.port1.onmessage = (e) => {
      clearTimeout(timer);
      resolve(e.data);
    };
    worker.postMessage(msg, [ch.port2]);
  });
}

// proofRoot is the root key a proof names: taken only on first use, when
// no root is pinned and no device is unlocked.
function proofRoot(proof) {
  try {
    const p = JSON.parse(proof);
    return typeof p.root === 'string' ? p.root : '';
  } catch {
    return '';
  }
}

function infoOf(state) {
  const a = state && state.about;
  if (a && a.version === state.version) {
    return { ...a, verified: true };
  }
  return { version: state ? state.version : null, logIndex: null, loggedAt: null, treeSize: null, root: null, verified: false };
}

let lastState = null;

// verify checks a release with the messenger: against the unlocked
// device's network when there is one (it then outranks any pin), else
// against root (the pinned one, or on first use the one the proof
// names).
async function verify(m, texts, root) {
  try {
    return await m.verifyRelease(texts.manifest, texts.proof);
  } catch (err) {
    if (!err || err.code !== 'bad-argument' || !root) {
      throw err;
    }
  }
  return m.verifyRelease(texts.manifest, texts.proof, root);
}

// gate runs one check: the running release's log entry is recorded once
// (on first use, against the root its proof names, which is then pinned),
// then a staged release is verified and activated, or refused.
async function gate() {
  const m = await messenger;
  const canVerify = m && typeof m.verifyRelease === 'function';
  let { state, error } = await call({ type: 'check-update' });
  const out = { updated: false, version: state.version, staged: '', refused: null, error };
  if (canVerify && state.running && state.running.proof && !infoOf(state).verified) {
    try {
      const about = await verify(m, state.running, state.pinnedRoot || proofRoot(state.running.proof));
      ({ state } = await call({ type: 'activate-release', version: state.version, about }));
    } catch (err) {
      out.error = out.error || `the running release: ${err.message || err}`;
    }
  }
  const staged = state.staged;
  if (staged) {
    out.staged = staged.version;
    if (!canVerify) {
      out.error = out.error || 'a new release waits: no messenger to verify it';
    } else {
      try {
        const about = await verify(m, staged, state.pinnedRoot);
        const res = await call({ type: 'activate-release', version: staged.version, about });
        state = res.state;
        out.updated = !res.error;
        out.error = res.error;
      } catch (err) {
        const msg = err && err.message ? err.message : String(err);
        if (err && err.code === 'release-refused') {
          ({ state } = await call({ type: 'refuse-release', version: staged.version, error: msg }));
          window.dispatchEvent(new CustomEvent('anom:release-refused', { detail: { version: staged.version, error: msg } }));
          out.refused = { version: staged.version, error: msg };
          out.error = `release ${staged.version} refused: ${msg}`;
        } else {
          // Not decided (no root to check against yet, or an error of
          // the messenger): it stays staged for the next check.
          out.error = `release ${staged.version} not verified yet: ${msg}`;
        }
      }
    }
  }
  out.version = state.version;
  lastState = state;
  window.dispatchEvent(new CustomEvent('anom:release', { detail: infoOf(state) }));
  return out;
}

// Checks run one at a time.
let queue = Promise.resolve();

function check() {
  const run = queue.then(gate, gate);
  queue = run.catch(() => {});
  return run.catch((err) => ({ updated: false, version: lastState ? lastState.version : null, staged: '', refused: null, error: String(err) }));
}

async function info() {
  const { state } = await call({ type: 'state' });
  lastState = state;
  return infoOf(state);
}

// startReleaseGate sets globalThis.anomRelease and runs a first check;
// m resolves to the messenger (the anom object) or null.
export function startReleaseGate(m) {
  messenger = m;
  globalThis.anomRelease = Object.freeze({ info, check });
  return check();
}
