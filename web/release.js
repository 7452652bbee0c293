// The update gate, the page's side (sw.js is the worker's): the service
// worker stages a new release; the messenger's WebAssembly checks it
// against the network's transparency log (anom.verifyRelease, the Go
// client library's check, web/API.md); only a verified release is
// activated. The first release is taken on first use (web/README.md).
//
// For the messenger's UI (an "about" line), globalThis.anomRelease:
//   info()  → {version, logIndex, loggedAt, treeSize, root, verified}
//             the release this page runs (logIndex null until verified);
//   check() → {updated, version, staged, refused, worker, error} runs
//             the gate;
//   workerRefused() → whether the service worker controlling the page
//             is not one of a verified release, or the running release
//             is not in the unlocked device's network's log (the
//             messenger is then not unlocked: the page is a calculator
//             only).
// For app.js: workerVerified() resolves, after this load's first check,
// to whether a PIN may reach the messenger; noReleaseGate(m) when no
// service worker runs.
// Events on window: "anom:release" (detail: info()) after each check,
// "anom:release-refused" (detail: {version, error}, or for a service
// worker {worker, controlling, error}) when a release or a worker is
// refused.
//
// The service worker itself: the browser fetches sw.js on its own and
// installs a changed one. Each check asks the browser to look for one
// (registration.update(), also run when the browser found one itself),
// hashes the sw.js the server serves, which is then the newest worker's,
// and lets a waiting worker take over ("activate-worker") only when that
// SHA-256 is the one a release manifest verified in the log lists for
// /sw.js. A worker that controls the page without being so verified
// (it took over by itself, or when all the app's tabs were closed) is
// reported and unregistered, and the page stays a calculator: the first
// check runs on every load before any PIN reaches the messenger.
//
// Release proofs are asked from the tree head the device saw last (the
// unlocked device's, else the one pinned with the root) and must be
// consistent with it; the messenger is told the running release
// (anom.setAppRelease) for its check at activation, in the log of the
// invite's network.

let messenger = Promise.resolve(null);

// call sends msg to the service worker and resolves to its answer,
// {state, error}.
// A worker replaced while it was asked never answers: the call then
// fails at once (the check queued by the change asks the new one).
async function call(msg) {
  const reg = await navigator.serviceWorker.ready;
  const worker = navigator.serviceWorker.controller || reg.active;
  return new Promise((resolve, reject) => {
    const ch = new MessageChannel();
    const sw = navigator.serviceWorker;
    const end = () => {
      clearTimeout(timer);
      sw.removeEventListener('controllerchange', replaced);
    };
    const replaced = () => {
      end();
      reject(new Error('the service worker was replaced while asked'));
    };
    const timer = setTimeout(() => {
      end();
      reject(new Error('the service worker does not answer'));
    }, 60000);
    sw.addEventListener('controllerchange', replaced);
    ch.port1.onmessage = (e) => {
      end();
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
// The sums of /sw.js the last check verified.
let lastVerified = new Set();

// verify checks a release with the messenger: against the unlocked
// device's network and the tree head the device saw last when there is
// one (it then outranks any pin), else against root (the pinned one, or
// on first use the one the proof names) and head, the tree head pinned
// with it (none on first use): the proof's head must be consistent with
// it.
async function verify(m, texts, root, head) {
  try {
    return await m.verifyRelease(texts.manifest, texts.proof);
  } catch (err) {
    if (!err || err.code !== 'bad-argument' || !root) {
      throw err;
    }
  }
  return m.verifyRelease(texts.manifest, texts.proof, root, head || '');
}

// deviceHeadSize is the size of the tree head the unlocked device saw
// last (0: none, or no device unlocked): the proofs are asked from it.
async function deviceHeadSize(m) {
  if (!m || typeof m.logHead !== 'function') {
    return 0;
  }
  try {
    const h = await m.logHead();
    return h && Number.isSafeInteger(h.size) ? h.size : 0;
  } catch {
    return 0;
  }
}

// tellRelease tells the messenger the release the page runs and the tree
// head pinned, for its check at activation: the release must be in the
// log of the invite's network.
function tellRelease(m, state) {
  if (!m || typeof m.setAppRelease !== 'function' || !state || !state.running) {
    return;
  }
  const head = state.pinnedHead && typeof state.pinnedHead.head === 'string' ? state.pinnedHead.head : '';
  m.setAppRelease(state.running.manifest || '', state.running.proof || '', head).catch(() => {});
}

let refusedController = false;
// refusedRunning: the running release is not in the unlocked device's
// network's log.
let refusedRunning = false;

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

// swSum returns the SHA-256 a release manifest lists for /sw.js, or ''.
function swSum(manifest) {
  try {
    const sum = JSON.parse(manifest).files['/sw.js'];
    return typeof sum === 'string' ? sum : '';
  } catch {
    return '';
  }
}

// settle waits (at most 30 s) until reg's installing worker, if any, is
// installed or has failed.
async function settle(reg) {
  const w = reg.installing;
  if (!w) {
    return;
  }
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, 30000);
    const done = () => {
      if (w.state !== 'installing') {
        clearTimeout(timer);
        w.removeEventListener('statechange', done);
        resolve();
      }
    };
    w.addEventListener('statechange', done);
    done();
  });
}

// takeOver tells reg's waiting worker to take over and waits (at most
// 10 s) until it controls the page, sending nothing to the old worker
// meanwhile: Chromium gives up an activation when the old worker gets an
// event while it is under way, so the message is repeated.
//
// takingOver is set meanwhile: the change it brings about is no news to
// controllerChanged.
let takingOver = false;

async function takeOver(reg) {
  const changed = new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }));
  takingOver = true;
  try {
    for (let i = 0; i < 20; i++) {
      const w = reg.waiting;
      if (!w) {
        break;
      }
      w.postMessage({ type: 'activate-worker' });
      if (await Promise.race([changed.then(() => true), new Promise((r) => setTimeout(() => r(false), 500))])) {
        return true;
      }
    }
    return await Promise.race([changed.then(() => true), new Promise((r) => setTimeout(() => r(false), 500))]);
  } finally {
    takingOver = false;
  }
}

// checkWorker asks the browser for a new sw.js and checks the newest
// worker against the sums of /sw.js in the verified manifests: a waiting
// worker so verified is told to take over; one that is not is refused
// (it stays waiting); a controlling one that is not makes the page a
// calculator only. It resolves to {hash, activated, refused, controlling,
// error}.
async function checkWorker(verified) {
  const reg = await navigator.serviceWorker.getRegistration();
  if (!reg) {
    return { hash: '', activated: false, refused: false, controlling: false, error: 'no service worker registered' };
  }
  const out = { hash: '', activated: false, refused: false, controlling: false, unregistered: false, error: '' };
  try {
    await reg.update();
  } catch (err) {
    out.error = `the service worker's update check: ${err && err.message ? err.message : err}`;
    return out;
  }
  await settle(reg);
  const newest = reg.waiting || reg.active;
  if (!newest) {
    return out;
  }
  try {
    const res = await fetch(newest.scriptURL, { cache: 'no-store' });
    if (!res.ok) {
      throw new Error(`${res.status}`);
    }
    out.hash = hex(await crypto.subtle.digest('SHA-256', await res.arrayBuffer()));
  } catch (err) {
    out.error = `sw.js: ${err && err.message ? err.message : err}`;
    return out;
  }
  if (verified.size === 0) {
    // Nothing verified to check against (no messenger, or before the
    // first verification): a new worker stays waiting.
    return out;
  }
  const ok = verified.has(out.hash);
  if (reg.waiting && reg.waiting === newest) {
    if (ok) {
      out.activated = await takeOver(reg);
      if (!out.activated) {
        out.error = 'the verified service worker did not take over yet';
      }
      return out;
    }
  } else if (ok) {
    return out;
  } else {
    out.controlling = true;
    refusedController = true;
  }
  out.refused = true;
  out.error = `service worker sw.js (SHA-256 ${out.hash}) is in no release verified in the transparency log`;
  if (out.controlling) {
    // It took over without the page (by itself, or the browser once all
    // the app's tabs were closed): it goes. The registration is dropped
    // (the caches stay: the pinned root and head, the running release),
    // so the next load registers the worker again from the server and
    // checks it anew.
    try {
      await reg.unregister();
      out.unregistered = true;
    } catch (err) {
      out.error += `; unregistering it: ${err && err.message ? err.message : err}`;
    }
  }
  window.dispatchEvent(new CustomEvent('anom:release-refused', { detail: { worker: out.hash, controlling: out.controlling, error: out.error } }));
  if (!out.controlling) {
    await call({ type: 'refuse-worker', hash: out.hash, error: out.error });
  }
  return out;
}

// gate runs one check: the running release's log entry is recorded once
// (on first use, against the root its proof names, which is then pinned),
// then a staged release is verified and activated, or refused.
async function gate() {
  const m = await messenger;
  const canVerify = m && typeof m.verifyRelease === 'function';
  const deviceSize = await deviceHeadSize(m);
  let state, error;
  try {
    ({ state, error } = await call({ type: 'check-update', from: deviceSize }));
  } catch (err) {
    // A worker that does not answer (or was just replaced) is still
    // checked against what the last check verified: a hostile one
    // cannot escape the check by staying silent.
    if (canVerify && lastVerified.size > 0) {
      const worker = await checkWorker(lastVerified);
      if (worker.refused) {
        return { updated: false, version: lastState ? lastState.version : null, staged: '', refused: null, worker, error: worker.error };
      }
    }
    throw err;
  }
  const out = { updated: false, version: state.version, staged: '', refused: null, worker: null, error };
  const pinnedHead = () => (state.pinnedHead && state.pinnedHead.head) || '';
  // The running release is verified under the pinned root (on first
  // use, the root its proof names), and on each check again with the
  // proof the server gives now, from the head seen: so the device follows
  // the log (the head pinned grows) and a fork shows. Once a device is
  // unlocked it is verified under the device's own network and log head:
  // a release not in them (a server that swapped the root key in what it
  // served) makes the page a calculator only, as a refused worker does.
  if (canVerify && state.running && state.running.proof) {
    try {
      const about = await verify(m, state.running, state.pinnedRoot || proofRoot(state.running.proof), pinnedHead());
      ({ state } = await call({ type: 'activate-release', version: state.version, about }));
    } catch (err) {
      const msg = err && err.message ? err.message : String(err);
      out.error = out.error || `the running release: ${msg}`;
      if (err && (err.code === 'release-refused' || err.code === 'wrong-network')) {
        // Under an unlocked device's own network and log head, the page
        // stops handing it the PIN.
        const byDevice = deviceSize > 0;
        refusedRunning = refusedRunning || byDevice;
        out.refused = { version: state.version, running: true, error: msg };
        window.dispatchEvent(new CustomEvent('anom:release-refused', {
          detail: { version: state.version, running: true, controlling: byDevice, error: msg },
        }));
      }
    }
  }
  const staged = state.staged;
  let verifiedStaged = '';
  if (staged) {
    out.staged = staged.version;
    if (!canVerify) {
      out.error = out.error || 'a new release waits: no messenger to verify it';
    } else {
      try {
        const about = await verify(m, staged, state.pinnedRoot, pinnedHead());
        const res = await call({ type: 'activate-release', version: staged.version, about });
        state = res.state;
        out.updated = !res.error;
        out.error = res.error;
        if (out.updated) {
          verifiedStaged = staged.manifest;
        }
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
  const verified = new Set();
  if (infoOf(state).verified && state.running) {
    verified.add(swSum(state.running.manifest));
  }
  verified.add(swSum(verifiedStaged));
  verified.delete('');
  lastVerified = verified;
  if (canVerify) {
    out.worker = await checkWorker(verified);
    if (out.worker.refused) {
      out.error = out.error || out.worker.error;
    }
    ({ state } = await call({ type: 'state' }));
  }
  out.version = state.version;
  lastState = state;
  tellRelease(m, state);
  window.dispatchEvent(new CustomEvent('anom:release', { detail: infoOf(state) }));
  return out;
}

// Checks run one at a time: pending counts those under way or waiting,
// waiting those not started yet.
let queue = Promise.resolve();
let pending = 0;
let waiting = 0;

function check() {
  pending++;
  waiting++;
  const start = () => {
    waiting--;
    return gate();
  };
  const run = queue.then(start, start).finally(() => {
    pending--;
  });
  queue = run.catch(() => {});
  return run.catch((err) => ({ updated: false, version: lastState ? lastState.version : null, staged: '', refused: null, worker: null, error: String(err) }));
}

// A new worker the browser found is checked unless a check is under way
// (it found it with its own update request, and checks the newest worker
// after) or waiting.
function workerFound() {
  if (pending === 0) {
    check();
  }
}

// A worker that took over the page without takeOver is checked even when
// a check is under way, since that one may have looked at the worker
// before the change; unless a check not started yet will see it anyway.
function controllerChanged() {
  if (!takingOver && waiting === 0) {
    check();
  }
}

// workerRefused tells whether the worker controlling the page is in no
// verified release.
export function workerRefused() {
  return refusedController || refusedRunning;
}

// The verdict of this load's first check of the controlling worker: the
// page hands no PIN to the messenger before it (workerVerified).
let settleVerdict = () => {};
const firstVerdict = new Promise((resolve) => {
  settleVerdict = resolve;
});

// workerVerified resolves, once this load's first check ran, to whether
// the page may hand a PIN to the messenger m: false when the worker
// controlling the page (or the running release) is in no release
// verified in the log. A worker that could not be checked (offline, no
// manifest verified yet) does not stop it (web/README.md, Limits); nor
// does a messenger that cannot verify a release (a calculator-only
// build), for which there is nothing to wait for.
export function workerVerified(m) {
  if (!m || typeof m.verifyRelease !== 'function') {
    return Promise.resolve(!workerRefused());
  }
  return firstVerdict.then(() => !workerRefused());
}

// noReleaseGate settles the verdict when the gate cannot run (no service
// worker in this browser, or its registration failed), and tells the
// messenger the release the server serves now, for its check at
// activation (the strongest there is without a worker).
export async function noReleaseGate(m) {
  settleVerdict();
  const mm = await m;
  if (!mm || typeof mm.setAppRelease !== 'function') {
    return;
  }
  try {
    const [r, p] = await Promise.all([fetch('release.json', { cache: 'no-store' }), fetch('release-proof.json', { cache: 'no-store' })]);
    await mm.setAppRelease(r.ok ? await r.text() : '', p.ok ? await p.text() : '', '');
  } catch {
    // Nothing told: activation waits, then refuses.
  }
}

async function info() {
  const { state } = await call({ type: 'state' });
  lastState = state;
  return infoOf(state);
}

// startReleaseGate sets globalThis.anomRelease and runs a first check;
// m resolves to the messenger (the anom object) or null.
// A new worker the browser found by itself (its own update check, on a
// navigation or daily) and a change of the controlling worker are checked
// too (workerFound, controllerChanged).
export async function startReleaseGate(m) {
  messenger = m;
  globalThis.anomRelease = Object.freeze({ info, check, workerRefused });
  const reg = await navigator.serviceWorker.getRegistration();
  if (reg) {
    reg.addEventListener('updatefound', workerFound);
  }
  navigator.serviceWorker.addEventListener('controllerchange', controllerChanged);
  const first = check();
  first.finally(settleVerdict);
  return first;
}
