// Photos and voice notes for the messenger: a photo's thumbnail made on
// the device with a canvas (sent in the photo's own message, see
// anom.sendFile's options.thumbnail), and voice notes recorded with
// MediaRecorder.

const THUMB_SIZE = 320;

// thumbTarget returns the message ID whose thumbnail m is, or '': a
// thumbnail sent by older clients as a second attachment after the
// photo's message (the wasm recognises the form and names the photo in
// attachment.thumbnailOf).
export function thumbTarget(m) {
  if (!m || m.kind !== 'attachment' || !m.attachment) {
    return '';
  }
  return m.attachment.thumbnailOf || '';
}

// makeThumbnail draws the image in file at most THUMB_SIZE pixels on its
// longer side and returns it as JPEG bytes.
export async function makeThumbnail(file) {
  const bmp = await createImageBitmap(file);
  const scale = Math.min(1, THUMB_SIZE / Math.max(bmp.width, bmp.height));
  const w = Math.max(1, Math.round(bmp.width * scale));
  const hgt = Math.max(1, Math.round(bmp.height * scale));
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = hgt;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(bmp, 0, 0, w, hgt);
  bmp.close();
  const blob = await new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('no thumbnail'))), 'image/jpeg', 0.7));
  return new Uint8Array(await blob.arrayBuffer());
}

// Recorder records a voice note from the microphone.
export class Recorder {
  static async start() {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const r = new Recorder();
    r.stream = stream;
    r.chunks = [];
    r.rec = new MediaRecorder(stream);
    r.rec.addEventListener('dataavailable', (e) => {
      if (e.data && e.data.size) {
        r.chunks.push(e.data);
      }
    });
    r.started = performance.now();
    r.rec.start();
    return r;
  }

  // stop ends the recording: {file, durationMs}, or null if empty.
  stop() {
    return new Promise((resolve) => {
      this.rec.addEventListener('stop', () => {
        this.release();
        const durationMs = Math.round(performance.now() - this.started);
        const type = (this.rec.mimeType || 'audio/webm').split(';')[0];
        if (!this.chunks.length) {
          resolve(null);
          return;
        }
        const ext = type.includes('ogg') ? 'ogg' : type.includes('mp4') ? 'm4a' : 'webm';
        const file = new File(this.chunks, 'voice-' + new Date().toISOString().replace(/[:.]/g, '-') + '.' + ext, { type });
        resolve({ file, durationMs });
      }, { once: true });
      this.rec.stop();
    });
  }

  cancel() {
    try { this.rec.stop(); } catch { /* stopped */ }
    this.release();
  }

  release() {
    for (const t of this.stream.getTracks()) {
      t.stop();
    }
  }
}
