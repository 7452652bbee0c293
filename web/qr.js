// QR codes in the messenger: drawing one (anom.qrEncode's modules on a
// canvas) and scanning one with the camera (frames drawn to a canvas,
// read by anom.qrDecode a few times a second). What a scanned code
// carries is checked by the caller (an invite by anom.activate, a safety
// code by anom.verifyScanned, a pairing code by anom.lookupPairing).

import { h, modal } from './dom.js';

const SCAN_MS = 250; // between two frames read
const FRAME_MAX = 640; // the widest frame handed to the reader, in pixels

// qrCanvas resolves to a canvas showing the QR code of text, with a
// quiet zone of 4 modules, labelled for screen readers with label (id,
// if given, is the canvas's).
export async function qrCanvas(anom, text, label, id) {
  const m = await anom.qrEncode(text);
  const quiet = 4;
  const scale = Math.max(3, Math.floor(264 / (m.size + 2 * quiet)));
  const side = (m.size + 2 * quiet) * scale;
  const canvas = h('canvas', { class: 'qr', id, width: side, height: side, role: 'img', 'aria-label': label });
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, side, side);
  ctx.fillStyle = '#000';
  for (let y = 0; y < m.size; y++) {
    for (let x = 0; x < m.size; x++) {
      if (m.modules[y * m.size + x]) {
        ctx.fillRect((x + quiet) * scale, (y + quiet) * scale, scale, scale);
      }
    }
  }
  return canvas;
}

// cameraError says in words why the camera did not open.
export function cameraError(e) {
  switch (e && e.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'The camera was not allowed. Allow it for this site in the browser’s settings, or type or paste the code instead.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera was found. Type or paste the code instead.';
    case 'NotReadableError':
    case 'AbortError':
      return 'The camera is in use by another app or could not start. Close that app, or type or paste the code instead.';
    default:
      return 'The camera could not be opened' + (e && e.message ? ' (' + e.message + ')' : '') + '. Type or paste the code instead.';
  }
}

// scanQR opens the camera (the rear one if there is a choice) in a dialog
// titled title and resolves to the text of the first QR code read, or
// null if the user closed the dialog or there is no camera (the dialog
// then says why and stays until closed). The camera is stopped either
// way.
export function scanQR(root, anom, title, hint) {
  return new Promise((resolve) => {
    const video = h('video', { class: 'scan-video', autoplay: true, muted: true, playsinline: true, 'aria-label': 'Camera view' });
    // The properties, not only the attributes: an element made by script
    // takes muted from the property, and autoplay needs it muted.
    video.muted = true;
    video.playsInline = true;
    const status = h('p', { class: 'scan-status', role: 'status', 'aria-live': 'polite' }, 'Opening the camera…');
    const dlg = modal(root, title, hint ? h('p', { class: 'hint' }, hint) : null, video, status);
    dlg.classList.add('scan');
    const canvas = document.createElement('canvas');
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    let stream = null;
    let timer = 0;
    let done = false;
    const finish = (text) => {
      if (done) {
        return;
      }
      done = true;
      clearTimeout(timer);
      if (stream) {
        for (const t of stream.getTracks()) {
          t.stop();
        }
      }
      video.srcObject = null;
      if (dlg.open) {
        dlg.close();
      }
      resolve(text);
    };
    dlg.addEventListener('close', () => finish(null));
    // What the scanner did so far, for a support question (and a test's
    // failure message): frames looked at, frames read, the video's state
    // and the last reading's error.
    const seen = { ticks: 0, reads: 0, last: '' };
    const tick = async () => {
      if (done) {
        return;
      }
      const vw = video.videoWidth;
      const vh = video.videoHeight;
      seen.ticks++;
      dlg.dataset.scan = `ticks=${seen.ticks} reads=${seen.reads} video=${vw}x${vh} readyState=${video.readyState} paused=${video.paused} last=${seen.last}`;
      try {
        if (video.paused) {
          // Autoplay may not have started it (a browser's policy, a
          // dialog shown late): without frames there is nothing to read.
          video.play().catch(() => { /* the next tick tries again */ });
        }
        if (vw > 0 && vh > 0 && video.readyState >= 2) {
          const k = Math.min(1, FRAME_MAX / Math.max(vw, vh));
          canvas.width = Math.round(vw * k);
          canvas.height = Math.round(vh * k);
          ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
          const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
          seen.reads++;
          const r = await anom.qrDecode(img.data, img.width, img.height);
          finish(r.text);
          return;
        }
      } catch (e) {
        // Whatever failed (no code in this frame, a frame not drawable
        // yet), the next frame is tried: the scanner stops only when
        // the user closes it.
        seen.last = (e && (e.code || e.name)) + ': ' + ((e && e.message) || String(e));
        if (e && e.code && e.code !== 'no-qr') {
          status.textContent = 'Reading the camera failed: ' + (e.message || e);
        }
      }
      if (!done) {
        timer = setTimeout(tick, SCAN_MS);
      }
    };
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      status.textContent = cameraError({ name: 'NotFoundError' });
      status.setAttribute('role', 'alert');
      return;
    }
    navigator.mediaDevices.getUserMedia({ video: { facingMode: { ideal: 'environment' } }, audio: false })
      .then((s) => {
        stream = s;
        if (done) { // closed while the browser asked for the camera
          for (const t of s.getTracks()) {
            t.stop();
          }
          return;
        }
        video.srcObject = s;
        video.play().catch(() => { /* autoplay does it */ });
        status.textContent = 'Hold the QR code in front of the camera.';
        timer = setTimeout(tick, SCAN_MS);
      })
      .catch((e) => {
        status.textContent = cameraError(e);
        status.setAttribute('role', 'alert');
        dlg.dataset.error = (e && e.name) || 'error';
      });
  });
}
