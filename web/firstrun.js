// The first run: the activation form shown when the PIN gesture finds no
// device in this browser (anom:first-run). It makes the device
// (anom.create: the PIN's Argon2id runs here) and activates it with the
// invite and the activation code (anom.activate), showing progress and
// the library's errors in words.

import { h, clear } from './dom.js';
import { qrCanvas, scanQR } from './qr.js';

// errorText turns an anom error (web/API.md's codes) into words.
export function errorText(e) {
  const code = e && e.code;
  const msg = (e && e.message) || String(e);
  switch (code) {
    case 'bad-pin': return 'That PIN cannot be used: ' + msg;
    case 'bad-invite': return 'The invite is not valid. Paste the whole anom://… text you were given.';
    case 'bad-code': return 'The activation code is wrong, used or expired.';
    case 'username-taken': return 'That username belongs to someone else. Choose another.';
    case 'wrong-network': return 'The server is not the network of this invite (the code was not sent).';
    case 'in-use': return 'The messenger is open in another tab or window.';
    case 'exists': return 'This browser already holds a device.';
    case 'not-found': return 'No such user.';
    case 'escrow-unverified': return 'Sending is disabled until the escrow policy is verified.';
    case 'revoked': return 'This device was revoked.';
    case 'expired': return 'This device has expired.';
    case 'wiped': return 'The device was wiped.';
    case 'no-group': return 'You are not in this chat.';
    case 'not-safety-code': return 'That QR code is not an anom safety number.';
    case 'safety-mismatch': return '⚠ THE SAFETY NUMBERS DIFFER: do not trust this device. ' + msg;
    default: return msg;
  }
}

// firstRun shows the form in root and resolves once the device is
// activated (true) or the user gave up (false: the half-made device is
// wiped).
export function firstRun(root, anom) {
  return new Promise((resolve) => {
    const field = (id, label, attrs = {}) => {
      const input = attrs.multiline
        ? h('textarea', { id, name: id, rows: 3, required: true, autocomplete: 'off', spellcheck: 'false' })
        : h('input', { id, name: id, required: true, autocomplete: 'off', spellcheck: 'false', ...attrs });
      return [h('label', { for: id }, label), input];
    };
    const status = h('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
    const err = h('p', { class: 'error', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Activate');
    const pairing = h('section', { id: 'fr-pairing', class: 'pairing', hidden: true, 'aria-live': 'polite' });
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const pinAttrs = { type: 'password', inputmode: 'numeric', pattern: '[0-9]{6,15}', minlength: 6, maxlength: 15 };
    const form = h('form', { id: 'first-run', class: 'first-run', 'aria-label': 'Activate this device' },
      h('h1', {}, 'Set up'),
      h('p', { class: 'hint' }, 'The PIN is typed on the calculator followed by = twice. The duress PIN erases this device.'),
      field('fr-invite', 'Invite', { multiline: true }),
      h('button', { type: 'button', id: 'fr-scan', class: 'scan-btn', 'aria-label': 'Scan the invite’s QR code with the camera' }, 'Scan invite'),
      field('fr-code', 'Activation code'),
      field('fr-username', 'Username', { autocapitalize: 'none' }),
      field('fr-pin', 'PIN (6–15 digits)', pinAttrs),
      field('fr-pin2', 'PIN again', pinAttrs),
      field('fr-duress', 'Duress PIN', pinAttrs),
      field('fr-duress2', 'Duress PIN again', pinAttrs),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', id: 'fr-pair' }),
        ' This is a further device of a username that already has one (pair it)'),
      pairing,
      err, status,
      h('div', { class: 'row' }, cancel, submit));
    root.appendChild(form);
    form.querySelector('textarea').focus();

    form.addEventListener('input', () => { err.textContent = ''; });
    // Scanning the invite's QR code fills the field (pasting stays).
    form.querySelector('#fr-scan').addEventListener('click', async () => {
      err.textContent = '';
      const text = await scanQR(root, anom, 'Scan the invite', 'Point the camera at the invite’s QR code.');
      if (text === null) {
        return;
      }
      if (!text.startsWith('anom://')) {
        err.textContent = 'That QR code is not an anom invite (it does not start with anom://).';
        return;
      }
      const inv = form.querySelector('#fr-invite');
      inv.value = text;
      inv.dispatchEvent(new Event('input', { bubbles: true }));
      status.textContent = 'Invite scanned.';
    });
    let created = null;
    let paired = null; // the pairing shown: {username, code} // the PINs of the device made, while not activated
    const val = (id) => form.querySelector('#' + id).value.trim();

    cancel.addEventListener('click', async () => {
      if (created) {
        try { await anom.wipe(); } catch { /* nothing to keep */ }
      }
      form.remove();
      resolve(false);
    });

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      const pin = val('fr-pin');
      const duress = val('fr-duress');
      if (pin !== val('fr-pin2')) {
        err.textContent = 'The two PINs differ.';
        return;
      }
      if (duress !== val('fr-duress2')) {
        err.textContent = 'The two duress PINs differ.';
        return;
      }
      if (!/^[0-9]{6,15}$/.test(pin) || !/^[0-9]{6,15}$/.test(duress)) {
        err.textContent = 'PINs are 6 to 15 digits (the calculator types only digits).';
        return;
      }
      if (pin === duress) {
        err.textContent = 'The duress PIN must differ from the PIN.';
        return;
      }
      submit.disabled = true;
      form.setAttribute('aria-busy', 'true');
      try {
        if (created && (created.pin !== pin || created.duress !== duress)) {
          await anom.wipe();
          created = null;
          paired = null;
          pairing.hidden = true;
        }
        if (!created) {
          status.textContent = 'Protecting your PIN (this takes a few seconds)…';
          // Tests pass a cheap key derivation (globalThis.anomCreateOptions).
          const opts = typeof globalThis.anomCreateOptions === 'object' ? globalThis.anomCreateOptions : undefined;
          await anom.create(pin, duress, opts);
          created = { pin, duress };
        }
        const username = val('fr-username');
        if (form.querySelector('#fr-pair').checked && (!paired || paired.username !== username)) {
          // A further device: the existing one approves this one's key
          // (by the code, after comparing the fingerprint) before the
          // activation.
          status.textContent = 'Asking the server to pair…';
          const r = await anom.pair(val('fr-invite'), username);
          paired = { username, code: r.code };
          clear(pairing);
          pairing.append(
            h('p', {}, 'On your other device: Devices → Add a device, enter or scan this code, and approve only if the fingerprint there is the same:'),
            h('p', { class: 'code' }, 'Code ', h('strong', { id: 'fr-pair-code' }, r.code)),
            await qrCanvas(anom, r.code, 'QR code of the pairing code ' + r.code, 'fr-pair-qr'),
            h('p', { class: 'code' }, 'Fingerprint ', h('strong', { id: 'fr-pair-fingerprint' }, r.fingerprint)),
            h('p', {}, 'Once approved there, press Activate.'));
          pairing.hidden = false;
          status.textContent = '';
          return;
        }
        status.textContent = 'Activating with the server…';
        await anom.activate(val('fr-invite'), val('fr-code'), val('fr-username'));
        status.textContent = 'Activated.';
        form.remove();
        resolve(true);
      } catch (e) {
        status.textContent = '';
        err.textContent = errorText(e);
      } finally {
        submit.disabled = false;
        form.removeAttribute('aria-busy');
      }
    });
  });
}
