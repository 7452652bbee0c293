// The app's start: the calculator on screen, the keyboard, the PIN
// gesture, the service worker and, once the calculator is usable, the
// messenger's WebAssembly (when it was built: release.json lists it).
//
// Nothing here talks to the server's API: before unlock the app fetches
// only its own static files. The messenger (the global anom object the
// WebAssembly defines, web/API.md) is asked to unlock with the PIN; a
// wrong PIN leaves the calculator as it is.

import { Calculator } from './calc.js';
import { noReleaseGate, startReleaseGate, workerVerified } from './release.js';

const display = document.getElementById('display');
const keys = new Map();
for (const b of document.querySelectorAll('.keys button')) {
  keys.set(b.dataset.key, b);
}
const clearKey = keys.get('clear');

const calc = new Calculator({ onPin: unlock });

function render() {
  const text = calc.display;
  display.textContent = text;
  const n = text.length;
  display.dataset.size = n <= 6 ? 'l' : n <= 9 ? 'm' : n <= 12 ? 's' : 'xs';
  const label = calc.clearLabel;
  clearKey.textContent = label;
  clearKey.setAttribute('aria-label', label === 'C' ? 'Clear' : 'All clear');
  const sel = calc.selectedOp;
  for (const op of ['+', '-', '*', '/']) {
    keys.get(op).classList.toggle('selected', op === sel);
  }
}

function press(key) {
  calc.press(key);
  render();
}

document.querySelector('.keys').addEventListener('click', (e) => {
  const b = e.target.closest('button');
  if (b) {
    press(b.dataset.key);
  }
});

// Keyboard: digits, . or , for the point, + - * x / for the operations,
// % , Enter or = for equals, Escape for all clear, Delete for clear,
// Backspace to delete a digit, F9 for the sign.
const keyboard = new Map([
  ['Enter', '='], ['=', '='], [',', '.'], ['x', '*'], ['X', '*'],
  ['Escape', 'clear'], ['Delete', 'clear'], ['Backspace', 'back'], ['F9', 'sign'],
]);
for (const k of '0123456789.+-*/%') {
  keyboard.set(k, k);
}

const calculator = document.getElementById('calculator');
document.addEventListener('keydown', (e) => {
  // The messenger's UI (messenger.js) hides the calculator while open.
  if (e.ctrlKey || e.metaKey || e.altKey || calculator.hidden) {
    return;
  }
  const key = keyboard.get(e.key);
  if (!key) {
    return;
  }
  e.preventDefault();
  let b = keys.get(key);
  if (key === 'back' || key === 'clear') {
    b = clearKey;
  }
  if (b) {
    b.classList.add('pressed');
    setTimeout(() => b.classList.remove('pressed'), 120);
  }
  press(key);
});

render();
// For the cold-load benchmark (web/webtest): the calculator answers keys
// from here on.
performance.mark('calculator-ready');

// unlock hands a PIN gesture's digits to the messenger, when there is
// one. Whatever it answers, the calculator stays as it is: a wrong PIN, a
// wipe (too many wrong PINs, the duress PIN) or an error show nothing.
// anom.unlock resolves to {result: "ok" | "wrong" | "wiped" |
// "duress-wiped" | "none", ...} (web/API.md). On "ok" the messenger's UI
// takes the screen (the event anom:unlocked, with that answer as its
// detail); on "none", no device in this browser yet, the event
// anom:first-run lets it offer the activation.
async function unlock(pin) {
  const m = await messenger;
  // On every load the worker controlling the page is checked against the
  // verified releases before a PIN goes to the messenger; one in none
  // (or a running release not in the device's network's log) leaves the
  // page a calculator (release.js).
  if (!m || !await workerVerified(m)) {
    return;
  }
  let res = null;
  try {
    res = await m.unlock(pin);
  } catch {
    return;
  }
  const result = res === true ? 'ok' : (res && typeof res === 'object' ? res.result : '');
  if (result === 'ok') {
    unlocked = true;
    armIdleLock();
    window.dispatchEvent(new CustomEvent('anom:unlocked', { detail: res }));
  } else if (result === 'none') {
    window.dispatchEvent(new CustomEvent('anom:first-run'));
  }
}

// Locking back to the calculator: when the page is hidden (another app,
// another tab, the screen off) and after idleLockSeconds without a key,
// a click or a touch, the messenger is locked (anom.lock: it disconnects
// and forgets the keys), the calculator cleared, and the event
// anom:locked tells the messenger's UI to leave the screen. The UI may
// change the idle time with anomShell.setIdleLock(seconds), from the
// device's own (encrypted) settings: the shell keeps nothing in storage.
let unlocked = false;
let idleLockSeconds = 120;
let idleTimer = 0;

// force locks even when the shell did not see the unlock (the
// messenger opened by its first run): a refused release or worker.
async function lock(force) {
  if (!unlocked && force !== true) {
    return;
  }
  unlocked = false;
  clearTimeout(idleTimer);
  calc.allClear();
  render();
  window.dispatchEvent(new CustomEvent('anom:locked'));
  const m = await messenger;
  try {
    if (m && typeof m.lock === 'function') {
      await m.lock();
    }
  } catch {
    // Locked or gone already: nothing to show.
  }
}

function armIdleLock() {
  clearTimeout(idleTimer);
  if (unlocked) {
    idleTimer = setTimeout(lock, idleLockSeconds * 1000);
  }
}

for (const ev of ['keydown', 'pointerdown', 'touchstart', 'wheel']) {
  document.addEventListener(ev, armIdleLock, { capture: true, passive: true });
}
document.addEventListener('visibilitychange', () => {
  if (document.hidden) {
    lock();
  }
});
window.addEventListener('pagehide', lock);
window.addEventListener('anom:release-refused', (e) => {
  if (e.detail && e.detail.controlling) {
    lock(true);
  }
});

window.anomShell = Object.freeze({
  lock,
  setIdleLock(seconds) {
    if (Number.isFinite(seconds) && seconds > 0) {
      idleLockSeconds = seconds;
      armIdleLock();
    }
  },
});

// loadMessenger loads the WebAssembly when release.json lists it and
// resolves to the anom object it defines, or null.
async function loadMessenger() {
  try {
    const res = await fetch('release.json');
    if (!res.ok) {
      return null;
    }
    const rel = await res.json();
    if (!rel.files || !rel.files['/dist/anom.wasm'] || !rel.files['/dist/wasm_exec.js']) {
      return null;
    }
    await import('./dist/wasm_exec.js');
    const go = new globalThis.Go();
    const { instance } = await WebAssembly.instantiateStreaming(fetch('dist/anom.wasm'), go.importObject);
    go.run(instance);
    for (let i = 0; i < 200 && typeof globalThis.anom !== 'object'; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    return typeof globalThis.anom === 'object' && globalThis.anom !== null && typeof globalThis.anom.unlock === 'function'
      ? globalThis.anom : null;
  } catch {
    return null;
  }
}

// The messenger: a test may define anom itself (the guard), otherwise
// the WebAssembly's, loaded once the calculator has been drawn.
const messenger = new Promise((resolve) => {
  if (typeof anom === 'object' && anom !== null && typeof anom.unlock === 'function') {
    resolve(anom);
    return;
  }
  requestAnimationFrame(() => setTimeout(() => loadMessenger().then(resolve), 0));
});

// The service worker, once the page and the messenger have loaded (its
// install then revalidates what the page fetched instead of downloading
// it again); then the update gate (release.js): a new release runs only
// once the messenger verified it in the network's transparency log. The
// browser checks sw.js bypassing its HTTP cache (updateViaCache 'none');
// a changed one waits until the gate has verified it.
// The messenger is told that the page runs the gate: activation waits
// for the release it runs, to check it in the invite's network.
if ('serviceWorker' in navigator) {
  messenger.then((m) => m && typeof m.setAppRelease === 'function' && m.setAppRelease()).catch(() => {});
  const loaded = new Promise((resolve) => window.addEventListener('load', resolve));
  Promise.all([loaded, messenger]).then(() => navigator.serviceWorker.register('sw.js', { scope: './', updateViaCache: 'none' }))
    .then(() => navigator.serviceWorker.ready)
    .then(() => startReleaseGate(messenger))
    .catch(() => noReleaseGate(messenger));
} else {
  noReleaseGate(messenger);
}
