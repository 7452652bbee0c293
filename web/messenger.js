// The messenger's UI: shown over the calculator after the PIN unlocks
// the device (the event anom:unlocked from app.js), or the activation
// form on a first run (anom:first-run). It talks only to the anom object
// of the WebAssembly (web/API.md). It locks back to the calculator after
// an idle time (default 2 minutes) and when the page is hidden, and goes
// back to a bare calculator when the device is wiped.

import { h, clear, clock, duration, size, modal } from './dom.js';
import { firstRun, errorText } from './firstrun.js';
import { makeThumbnail, thumbTarget, Recorder } from './media.js';
import { qrCanvas, scanQR } from './qr.js';

const IDLE_KEY = 'calc.idle'; // minutes; a calculator preference to an onlooker
const IDLE_CHOICES = [1, 2, 5, 10, 30]; // minutes the user can choose; 2 by default
// POLICY_CHANGED starts an escrow-policy event's text when the policy
// differs from the one the device verified before (client.EscrowPolicyChanged).
const POLICY_CHANGED = 'the escrow policy changed: ';
const TIMERS = [[0, 'Off'], [30, '30 s'], [300, '5 min'], [3600, '1 hour'], [86400, '1 day'], [604800, '1 week']];

const calcMain = document.getElementById('calculator');
let ui = null; // the open messenger (Messenger), or null

function anomObj() {
  return typeof anom === 'object' && anom !== null ? anom : null;
}

// showCalculator removes the messenger and leaves the calculator as new.
function showCalculator() {
  if (ui) {
    ui.destroy();
    ui = null;
  }
  const root = document.getElementById('messenger');
  if (root) {
    root.remove();
  }
  calcMain.hidden = false;
  const clearKey = document.querySelector('button[data-key="clear"]');
  if (clearKey) {
    clearKey.click();
    clearKey.click();
  }
}

function newRoot() {
  let root = document.getElementById('messenger');
  if (root) {
    root.remove();
  }
  root = h('div', { id: 'messenger', class: 'messenger' });
  document.body.appendChild(root);
  calcMain.hidden = true;
  return root;
}

window.addEventListener('anom:first-run', async () => {
  const a = anomObj();
  if (!a || ui) {
    return;
  }
  const root = newRoot();
  const ok = await firstRun(root, a);
  if (!ok) {
    showCalculator();
    return;
  }
  open(root, a);
});

// The shell locked the device (app.js: hidden, idle, or a refused
// release or service worker): the messenger leaves the screen.
window.addEventListener('anom:locked', () => {
  if (ui) {
    showCalculator();
  }
});

window.addEventListener('anom:unlocked', () => {
  const a = anomObj();
  if (!a || ui) {
    return;
  }
  open(newRoot(), a);
});

function open(root, a) {
  performance.mark('messenger-open');
  ui = new Messenger(root, a);
  ui.start();
}

// Messenger is the unlocked app: the chat list, a chat, the dialogs.
class Messenger {
  constructor(root, a) {
    this.root = root;
    this.anom = a;
    this.chats = new Map(); // id → chat
    this.current = null; // the open chat's id
    this.me = '';
    this.idleMs = idleTime();
    this.lastActive = Date.now();
    this.urls = []; // object URLs to revoke
    this.listeners = [];
    this.build();
  }

  listen(target, type, fn, opts) {
    target.addEventListener(type, fn, opts);
    this.listeners.push(() => target.removeEventListener(type, fn, opts));
  }

  build() {
    const r = this.root;
    this.banner = h('div', { id: 'banner', class: 'banner', role: 'alert', hidden: true });
    this.conn = h('span', { class: 'conn', role: 'status', 'aria-live': 'polite' }, 'Connecting…');
    this.who = h('span', { class: 'who' });
    const btn = (label, fn, cls = '') => h('button', { type: 'button', class: cls, 'aria-label': label, title: label, onclick: fn }, label);
    this.list = h('ul', { id: 'chat-list', class: 'chat-list', role: 'list', 'aria-label': 'Chats' });
    this.side = h('nav', { class: 'side', 'aria-label': 'Chat list' },
      h('header', { class: 'bar' }, h('h1', {}, 'Chats'), this.who, this.conn),
      h('div', { class: 'actions' },
        btn('New chat', () => this.newChat()),
        btn('New group', () => this.newGroup()),
        btn('Devices', () => this.showDevices()),
        btn('Settings', () => this.showSettings()),
        btn('Lock', () => this.lock(), 'lock')),
      this.list);
    this.chatTitle = h('h2', { id: 'chat-title' });
    this.escrowLine = h('button', { type: 'button', id: 'escrow-line', class: 'escrow-line', 'aria-label': 'Escrow policy: show details', onclick: () => this.showEscrow() });
    this.messages = h('ol', { id: 'messages', class: 'messages', role: 'log', 'aria-live': 'polite', 'aria-label': 'Messages' });
    this.input = h('textarea', { id: 'compose-text', rows: 1, 'aria-label': 'Message', placeholder: 'Message', autocomplete: 'off' });
    this.fileInput = h('input', { type: 'file', id: 'file-input', class: 'visually-hidden', 'aria-label': 'Attach a photo or file', tabindex: -1 });
    this.voiceBtn = h('button', { type: 'button', id: 'voice-btn', class: 'icon', 'aria-label': 'Record a voice note', 'aria-pressed': 'false' }, 'Mic');
    this.compose = h('form', { id: 'compose', class: 'compose', 'aria-label': 'Write a message' },
      this.fileInput,
      h('button', { type: 'button', class: 'icon', 'aria-label': 'Attach a photo or file', onclick: () => this.fileInput.click() }, '+'),
      this.voiceBtn, this.input,
      h('button', { type: 'submit', id: 'send-btn', class: 'icon primary', 'aria-label': 'Send' }, '➤'));
    this.timerSel = h('select', { id: 'timer', 'aria-label': 'Disappearing messages' },
      TIMERS.map(([s, l]) => h('option', { value: s }, 'Timer: ' + l)));
    this.chatView = h('section', { id: 'chat', class: 'chat', 'aria-labelledby': 'chat-title', hidden: true },
      h('header', { class: 'bar' },
        h('button', { type: 'button', class: 'back icon', 'aria-label': 'Back to chats', onclick: () => this.closeChat() }, '‹'),
        this.chatTitle,
        this.chatConn = h('span', { class: 'conn off', 'aria-hidden': 'true', hidden: true }, 'Offline'),
        this.timerSel,
        h('button', { type: 'button', id: 'members-btn', 'aria-label': 'Members and safety numbers', onclick: () => this.showMembers() }, 'Info')),
      this.escrowLine, this.messages, this.compose);
    this.empty = h('section', { class: 'empty', 'aria-hidden': 'true' }, h('p', {}, 'Choose a chat'));
    r.append(this.banner, h('div', { class: 'panes' }, this.side, this.chatView, this.empty));

    this.compose.addEventListener('submit', (e) => { e.preventDefault(); this.sendText(); });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey) {
        e.preventDefault();
        this.sendText();
      }
    });
    this.fileInput.addEventListener('change', () => this.sendFiles());
    this.voiceBtn.addEventListener('click', () => this.toggleVoice());
    this.timerSel.addEventListener('change', () => this.setTimer());
  }

  async start() {
    const a = this.anom;
    a.onEvent((e) => this.onEvent(e));
    for (const t of ['pointerdown', 'keydown', 'input', 'wheel', 'touchstart', 'click']) {
      this.listen(document, t, () => { this.lastActive = Date.now(); }, { passive: true, capture: true });
    }
    this.listen(document, 'visibilitychange', () => {
      if (document.visibilityState === 'hidden') {
        this.lock();
      }
    });
    // The shell (app.js) locks too, on its own idle timer: it gets the
    // same idle time.
    setShellIdle(this.idleMs);
    this.idleTimer = setInterval(() => {
      if (Date.now() - this.lastActive > this.idleMs) {
        this.lock();
      }
    }, 1000);
    this.expiryTimer = setInterval(() => this.expire(), 15000);
    try {
      const st = await a.status();
      this.me = st.username || '';
      this.who.textContent = this.me;
      this.setConnected(st.connected);
    } catch { /* shown by events */ }
    await this.refreshChats();
    performance.mark('chat-list-shown');
    this.root.dataset.ready = 'true';
  }

  destroy() {
    clearInterval(this.idleTimer);
    clearInterval(this.expiryTimer);
    for (const off of this.listeners) {
      off();
    }
    if (this.recorder) {
      this.recorder.cancel();
    }
    for (const u of this.urls) {
      URL.revokeObjectURL(u);
    }
    try { this.anom.onEvent(null); } catch { /* gone */ }
  }

  // lock forgets the keys and shows the calculator.
  async lock() {
    if (this.locking) {
      return;
    }
    this.locking = true;
    const a = this.anom;
    showCalculator();
    try { await a.lock(); } catch { /* already locked or wiped */ }
  }

  // wiped: the device is gone; a bare calculator stays.
  wiped() {
    showCalculator();
  }

  setConnected(on) {
    this.connected = on;
    this.conn.textContent = on ? 'Online' : 'Offline — messages wait';
    this.conn.classList.toggle('off', !on);
    if (this.chatConn) {
      this.chatConn.hidden = on;
    }
  }

  alert(text, loud = true) {
    const b = this.banner;
    clear(b);
    b.append(h('span', {}, text),
      h('button', { type: 'button', class: 'icon', 'aria-label': 'Dismiss', onclick: () => { b.hidden = true; } }, '×'));
    b.classList.toggle('loud', loud);
    b.hidden = false;
  }

  notify(title, body) {
    if (!('Notification' in window) || Notification.permission !== 'granted') {
      return;
    }
    try {
      const n = new Notification(title, { body, tag: 'anom' });
      n.onclick = () => window.focus();
    } catch { /* not allowed here */ }
  }

  chatName(c) {
    if (!c) {
      return '';
    }
    return c.name || (c.users && c.users.length ? c.users.join(', ') : 'Only you');
  }

  async refreshChats() {
    let list = [];
    try {
      list = await this.anom.chats();
    } catch (e) {
      this.alert(errorText(e), false);
      return;
    }
    this.chats = new Map(list.map((c) => [c.id, c]));
    this.renderList(list);
    if (this.current && this.chats.has(this.current)) {
      this.renderChatHeader();
    }
  }

  renderList(list) {
    clear(this.list);
    if (!list.length) {
      this.list.append(h('li', { class: 'none' }, 'No chats yet. Start one with “New chat”.'));
    }
    for (const c of list) {
      // The count is the device's (chats() counts after its read mark).
      const n = c.id === this.current ? 0 : c.unread || 0;
      const last = c.last;
      let preview = '';
      if (last) {
        preview = (c.name && last.username ? last.username + ': ' : '') + previewOf(last);
      }
      const name = this.chatName(c);
      const item = h('button', {
        type: 'button', class: 'chat-item', dataset: { id: c.id },
        'aria-label': name + (n ? ', ' + n + ' unread' : '') + (last ? ', last message ' + clock(last.sentAt) : ''),
        'aria-current': c.id === this.current ? 'true' : false,
        onclick: () => this.openChat(c.id),
      },
      h('span', { class: 'name' }, name),
      h('time', { class: 'when' }, last ? clock(last.sentAt) : ''),
      h('span', { class: 'preview' }, preview),
      n ? h('span', { class: 'unread', 'aria-hidden': 'true' }, String(n)) : null);
      this.list.append(h('li', {}, item));
    }
  }

  async openChat(id) {
    this.current = id;
    this.root.classList.add('in-chat');
    this.chatView.hidden = false;
    this.empty.hidden = true;
    this.renderList([...this.chats.values()]);
    this.renderChatHeader();
    await this.renderHistory();
    this.input.focus();
  }

  closeChat() {
    this.current = null;
    this.root.classList.remove('in-chat');
    this.chatView.hidden = true;
    this.empty.hidden = false;
    this.refreshChats();
  }

  renderChatHeader() {
    const c = this.chats.get(this.current);
    if (!c) {
      return;
    }
    this.chatTitle.textContent = this.chatName(c);
    this.escrowLine.textContent = 'Escrow: ' + (c.escrow || 'Escrow policy not verified yet');
    this.timerSel.value = String(c.timerSeconds || 0);
    if (![...this.timerSel.options].some((o) => o.value === String(c.timerSeconds || 0))) {
      this.timerSel.append(h('option', { value: c.timerSeconds }, 'Timer: ' + c.timerSeconds + ' s'));
      this.timerSel.value = String(c.timerSeconds);
    }
  }

  async renderHistory() {
    const id = this.current;
    let hist = [];
    try {
      hist = await this.anom.history(id);
    } catch (e) {
      this.alert(errorText(e), false);
      return;
    }
    if (id !== this.current) {
      return;
    }
    clear(this.messages);
    this.thumbs = new Map(); // full message id → thumbnail message
    for (const m of hist) {
      const t = thumbTarget(m);
      if (t) {
        this.thumbs.set(t, m);
      }
    }
    for (const m of hist) {
      this.addMessage(m);
    }
    this.scrollDown();
    this.markRead(id, Math.max(0, ...hist.map((m) => m.seq || 0)));
  }

  // markRead records on the device that the chat was seen up to seq, so
  // its unread count stays cleared after a reload.
  async markRead(id, seq) {
    if (!seq) {
      return;
    }
    try {
      const r = await this.anom.markRead(id, seq);
      const c = this.chats.get(id);
      if (c && r.readSeq >= seq) {
        c.unread = 0;
        c.readSeq = r.readSeq;
      }
    } catch (e) {
      this.alert(errorText(e), false);
    }
  }

  scrollDown() {
    this.messages.scrollTop = this.messages.scrollHeight;
  }

  // addMessage renders one message of the open chat (or updates it).
  addMessage(m) {
    if (m.kind === 'delete') {
      const gone = this.messages.querySelector(`li[data-id="${m.target}"]`);
      if (gone) {
        gone.remove();
      }
      return;
    }
    const target = thumbTarget(m);
    if (target) {
      this.thumbs.set(target, m);
      const full = this.messages.querySelector(`li[data-id="${target}"] .photo`);
      if (full) {
        this.loadThumb(full, m);
      }
      return;
    }
    if (this.messages.querySelector(`li[data-id="${m.id}"]`)) {
      return;
    }
    if (m.kind === 'timer' || m.kind === 'group-name') {
      const text = m.kind === 'timer'
        ? (m.username || 'Someone') + (m.timerSeconds ? ' set disappearing messages to ' + timerLabel(m.timerSeconds) : ' turned disappearing messages off')
        : (m.username || 'Someone') + ' named the group “' + (m.text || '') + '”';
      this.messages.append(h('li', { class: 'system', dataset: { id: m.id } }, text, ' · ', h('time', {}, clock(m.sentAt))));
      return;
    }
    const c = this.chats.get(m.groupId);
    const body = h('div', { class: 'body' });
    if (m.kind === 'text') {
      body.append(h('p', { class: 'text' }, m.text || ''));
    } else if (m.kind === 'voice') {
      body.append(this.voiceView(m));
    } else if (m.kind === 'attachment' && m.attachment && /^image\//.test(m.attachment.mime)) {
      body.append(this.photoView(m));
    } else if (m.kind === 'attachment') {
      body.append(this.fileView(m));
    }
    const mark = m.outgoing ? h('span', { class: 'mark', role: 'img', 'aria-label': m.pending ? 'pending' : 'sent' }, m.pending ? '○' : '✓') : null;
    const meta = h('div', { class: 'meta' },
      c && c.name && !m.outgoing ? h('span', { class: 'from' }, m.username) : null,
      h('time', { datetime: new Date(m.sentAt).toISOString(), title: 'Sent ' + new Date(m.sentAt).toLocaleString() }, clock(m.sentAt)),
      mark,
      m.outgoing ? h('button', { type: 'button', class: 'del', 'aria-label': 'Delete for everyone', onclick: () => this.deleteMessage(m.id) }, 'Delete') : null);
    const li = h('li', { class: m.outgoing ? 'out' : 'in', dataset: { id: m.id, kind: m.kind }, 'aria-label': (m.outgoing ? 'You' : m.username) + ', ' + clock(m.sentAt) },
      body, meta);
    if (m.pending) {
      li.classList.add('pending');
    }
    this.messages.append(li);
  }

  markSent(id) {
    const li = this.messages.querySelector(`li[data-id="${id}"]`);
    if (!li) {
      return;
    }
    li.classList.remove('pending');
    const mark = li.querySelector('.mark');
    if (mark) {
      mark.textContent = '✓';
      mark.setAttribute('aria-label', 'sent');
    }
  }

  photoView(m) {
    const box = h('button', { type: 'button', class: 'photo', 'aria-label': 'Photo ' + m.attachment.name + ': open', onclick: () => this.viewPhoto(m) },
      h('span', { class: 'ph' }, 'Photo: ' + m.attachment.name + ' · ' + size(m.attachment.size)));
    const thumb = this.thumbs && this.thumbs.get(m.id);
    if (m.attachment.thumbnail) {
      this.loadThumb(box, m, true);
    } else if (thumb) {
      // The older two-message form: the thumbnail came on its own.
      this.loadThumb(box, thumb);
    } else if (m.attachment.size <= 512 * 1024) {
      // A small photo without a thumbnail (another client's): show it.
      this.loadThumb(box, m);
    }
    return box;
  }

  async loadThumb(box, m, own) {
    try {
      const bytes = own ? await this.anom.fetchThumbnail(m.groupId, m.id) : await this.anom.fetchAttachment(m.groupId, m.id);
      const url = this.blobURL(bytes, own ? m.attachment.thumbnail.mime : m.attachment.mime);
      clear(box);
      box.append(h('img', { src: url, alt: 'Photo', class: 'thumb' }));
    } catch { /* the label stays */ }
  }

  blobURL(bytes, mime) {
    const url = URL.createObjectURL(new Blob([bytes], { type: mime || 'application/octet-stream' }));
    this.urls.push(url);
    return url;
  }

  async viewPhoto(m) {
    const status = h('p', { role: 'status' }, 'Opening…');
    const dlg = modal(this.root, m.attachment.name, status);
    dlg.classList.add('viewer');
    try {
      const bytes = await this.anom.fetchAttachment(m.groupId, m.id);
      status.remove();
      dlg.querySelector('.body').append(h('img', { id: 'viewer-img', src: this.blobURL(bytes, m.attachment.mime), alt: m.attachment.name }),
        h('a', { href: this.blobURL(bytes, m.attachment.mime), download: m.attachment.name, class: 'button' }, 'Save'));
    } catch (e) {
      status.textContent = errorText(e);
    }
  }

  voiceView(m) {
    const label = '▶ ' + duration(m.durationMs);
    const btn = h('button', { type: 'button', class: 'voice', 'aria-label': 'Play voice note, ' + duration(m.durationMs) }, label);
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      try {
        const bytes = await this.anom.fetchAttachment(m.groupId, m.id);
        const audio = h('audio', { controls: true, src: this.blobURL(bytes, m.attachment.mime), 'aria-label': 'Voice note' });
        btn.replaceWith(h('span', { class: 'voice-player' }, audio, h('span', { class: 'dur' }, duration(m.durationMs))));
        audio.play().catch(() => {});
      } catch (e) {
        btn.disabled = false;
        this.alert(errorText(e), false);
      }
    });
    return btn;
  }

  fileView(m) {
    const a = m.attachment;
    return h('button', { type: 'button', class: 'file', 'aria-label': 'Download ' + a.name, onclick: async () => {
      try {
        const bytes = await this.anom.fetchAttachment(m.groupId, m.id);
        const link = h('a', { href: this.blobURL(bytes, a.mime), download: a.name, hidden: true });
        this.root.append(link);
        link.click();
        link.remove();
      } catch (e) {
        this.alert(errorText(e), false);
      }
    } }, 'File: ' + a.name + ' · ' + size(a.size));
  }

  async onEvent(e) {
    switch (e.type) {
      case 'message': {
        const m = e.message;
        if (!m) {
          break;
        }
        if (m.groupId === this.current) {
          this.addMessage(m);
          this.scrollDown();
          this.markRead(m.groupId, m.seq);
        }
        if (!m.outgoing && ['text', 'attachment', 'voice'].includes(m.kind) && !thumbTarget(m) &&
            (m.groupId !== this.current || !document.hasFocus())) {
          this.notify('New message', 'From ' + m.username);
        }
        this.scheduleRefresh();
        break;
      }
      case 'sent':
        if (e.message) {
          this.markSent(e.message.id);
        }
        break;
      case 'joined': case 'members': case 'removed':
        this.scheduleRefresh();
        break;
      case 'device-removed':
        this.alert('A device was removed: ' + (e.text || ''), false);
        this.scheduleRefresh();
        break;
      case 'contact-devices': {
        const parts = [];
        if (e.added && e.added.length) parts.push(e.added.length + ' new device(s)');
        if (e.removed && e.removed.length) parts.push(e.removed.length + ' removed');
        if (e.rekeyed && e.rekeyed.length) parts.push(e.rekeyed.length + ' with a new key');
        if (e.verifiedLost && e.verifiedLost.length) parts.push('a verified device is no longer verified');
        this.alert('⚠ ' + e.username + '’s devices changed: ' + parts.join(', ') + '. Compare safety numbers.', !!(e.verifiedLost && e.verifiedLost.length) || !!(e.rekeyed && e.rekeyed.length));
        break;
      }
      case 'new-own-device':
        this.alert('⚠ A new device under your name' + (e.approved ? ' (approved)' : ' that you did not approve: your account may be compromised') + ': ' + (e.device || ''), !e.approved);
        break;
      case 'escrow-policy':
        if (e.error) {
          this.alert('⚠ The escrow policy could not be verified; sending is disabled: ' + e.error, true);
        } else if ((e.text || '').startsWith(POLICY_CHANGED)) {
          this.alert('⚠ THE ESCROW POLICY CHANGED: ' + e.text.slice(POLICY_CHANGED.length) + ' — tap the policy line in a chat for details.', true);
        } else {
          this.alert('⚠ Escrow policy verified: ' + (e.text || '') + ' — tap the policy line in a chat for details.', true);
        }
        this.scheduleRefresh();
        break;
      case 'escrow-mismatch':
        this.alert('⚠ A message’s escrow copy did not match it (reported to the server).', true);
        break;
      case 'connected':
        this.setConnected(true);
        break;
      case 'disconnected': case 'sync-failed':
        this.setConnected(false);
        break;
      case 'send-held':
        this.alert(e.error && e.error.includes('out of storage')
          ? 'The server is out of storage; your message is kept and will be sent later.'
          : 'Your message is kept and will be sent later: ' + (e.error || ''), false);
        break;
      case 'error':
        this.alert('A message could not be read: ' + (e.error || ''), false);
        break;
      case 'wiped':
        this.wiped();
        break;
      case 'stopped':
        this.alert('The server refused this device: ' + (e.text || ''), true);
        break;
    }
  }

  scheduleRefresh() {
    if (this.refreshPending) {
      return;
    }
    this.refreshPending = setTimeout(async () => {
      this.refreshPending = null;
      await this.refreshChats();
    }, 150);
  }

  async expire() {
    const c = this.current && this.chats.get(this.current);
    if (c && c.timerSeconds) {
      await this.renderHistory();
    }
  }

  async sendText() {
    const text = this.input.value;
    const id = this.current;
    if (!text.trim() || !id) {
      return;
    }
    this.input.value = '';
    try {
      const r = await this.anom.send(id, text);
      if (id === this.current) {
        this.addMessage({ groupId: id, id: r.id, username: this.me, sentAt: r.sentAt, outgoing: true, pending: r.pending, kind: 'text', text });
        this.scrollDown();
      }
      this.scheduleRefresh();
    } catch (e) {
      this.input.value = text;
      this.alert(errorText(e), e.code === 'escrow-unverified');
    }
  }

  async sendFiles() {
    const id = this.current;
    const files = [...this.fileInput.files];
    this.fileInput.value = '';
    for (const f of files) {
      await this.sendFile(id, f);
    }
  }

  async sendFile(id, f, durationMs) {
    const status = h('li', { class: 'system', role: 'status' }, 'Sending ' + f.name + '…');
    this.messages.append(status);
    this.scrollDown();
    try {
      const bytes = new Uint8Array(await f.arrayBuffer());
      const mime = f.type || 'application/octet-stream';
      // A photo's thumbnail is made here and sent in the photo's own
      // message.
      const thumb = !durationMs && /^image\//.test(mime) ? await makeThumbnail(f).catch(() => null) : null;
      const opts = durationMs ? { durationMs } : thumb ? { thumbnail: thumb, thumbnailMime: 'image/jpeg' } : undefined;
      const r = await this.anom.sendFile(id, bytes, mime, f.name, opts);
      status.remove();
      const m = { groupId: id, id: r.id, username: this.me, sentAt: r.sentAt, outgoing: true, pending: false,
        kind: durationMs ? 'voice' : 'attachment', durationMs,
        attachment: { name: f.name, mime, size: bytes.length, thumbnail: thumb ? { mime: 'image/jpeg', size: thumb.length, inline: true } : undefined } };
      if (id === this.current) {
        this.addMessage(m);
        this.scrollDown();
      }
      this.scheduleRefresh();
    } catch (e) {
      status.textContent = 'Could not send ' + f.name + ': ' + errorText(e);
      status.setAttribute('role', 'alert');
    }
  }

  async toggleVoice() {
    if (this.recorder) {
      const rec = this.recorder;
      this.recorder = null;
      this.voiceBtn.setAttribute('aria-pressed', 'false');
      this.voiceBtn.classList.remove('recording');
      this.voiceBtn.setAttribute('aria-label', 'Record a voice note');
      this.voiceBtn.textContent = 'Mic';
      const note = await rec.stop();
      if (note && this.current) {
        await this.sendFile(this.current, note.file, note.durationMs);
      }
      return;
    }
    try {
      this.recorder = await Recorder.start();
      this.voiceBtn.setAttribute('aria-pressed', 'true');
      this.voiceBtn.classList.add('recording');
      this.voiceBtn.setAttribute('aria-label', 'Stop and send the voice note');
      this.voiceBtn.textContent = 'Stop';
    } catch (e) {
      this.recorder = null;
      this.alert('The microphone is not available: ' + (e.message || e), false);
    }
  }

  async deleteMessage(mid) {
    if (!window.confirm('Delete this message for everyone?')) {
      return;
    }
    try {
      await this.anom.deleteMessage(this.current, mid);
      const li = this.messages.querySelector(`li[data-id="${mid}"]`);
      if (li) {
        li.remove();
      }
      this.scheduleRefresh();
    } catch (e) {
      this.alert(errorText(e), false);
    }
  }

  async setTimer() {
    const s = Number(this.timerSel.value);
    try {
      await this.anom.setTimer(this.current, s);
      await this.refreshChats();
      await this.renderHistory();
    } catch (e) {
      this.alert(errorText(e), false);
    }
  }

  // form is a small dialog form: fields [id, label, attrs], a submit
  // label, and an action(values) that may throw (shown in the dialog).
  form(title, fields, submitLabel, action) {
    const err = h('p', { class: 'error', role: 'alert' });
    const f = h('form', { class: 'dlg-form' },
      fields.map(([id, label, attrs = {}]) => [h('label', { for: id }, label), h('input', { id, name: id, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', ...attrs })]),
      err, h('button', { type: 'submit', class: 'primary' }, submitLabel));
    const dlg = modal(this.root, title, f);
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.textContent = '';
      const vals = Object.fromEntries(fields.map(([id]) => [id, f.querySelector('#' + id).value.trim()]));
      const b = f.querySelector('button[type=submit]');
      b.disabled = true;
      try {
        await action(vals, dlg);
        dlg.close();
      } catch (ex) {
        err.textContent = errorText(ex);
      } finally {
        b.disabled = false;
      }
    });
    return dlg;
  }

  newChat() {
    this.form('New chat', [['nc-user', 'Username', { required: true }]], 'Start', async (v) => {
      const r = await this.anom.startChat(v['nc-user']);
      await this.refreshChats();
      this.openChat(r.groupId);
    });
  }

  newGroup() {
    this.form('New group', [['ng-name', 'Group name', { required: true }], ['ng-users', 'Members (usernames, comma separated)', { required: true }]], 'Create', async (v) => {
      const r = await this.anom.createGroup(v['ng-name'], splitNames(v['ng-users']));
      if (r.warning) {
        this.alert(r.warning, false);
      }
      await this.refreshChats();
      this.openChat(r.groupId);
    });
  }

  async showMembers() {
    const c = this.chats.get(this.current);
    if (!c) {
      return;
    }
    const body = h('div', { class: 'members' });
    const dlg = modal(this.root, this.chatName(c), body);
    const gid = c.id;
    const render = async () => {
      await this.refreshChats();
      const cc = this.chats.get(gid) || c;
      clear(body);
      const rename = h('form', { class: 'inline' }, h('label', { for: 'gm-name' }, 'Group name'),
        h('input', { id: 'gm-name', value: cc.name || '' }), h('button', { type: 'submit' }, 'Rename'));
      rename.addEventListener('submit', async (e) => {
        e.preventDefault();
        try {
          await this.anom.setGroupName(gid, rename.querySelector('input').value.trim());
          await render();
        } catch (ex) { this.alert(errorText(ex), false); }
      });
      const users = h('ul', { class: 'users', 'aria-label': 'Members' });
      for (const u of cc.users) {
        users.append(h('li', {}, h('span', {}, u),
          h('button', { type: 'button', 'aria-label': 'Safety number of ' + u, onclick: () => this.showSafety(u) }, 'Safety number'),
          cc.name ? h('button', { type: 'button', 'aria-label': 'Remove ' + u, onclick: async () => {
            try { await this.anom.removeMembers(gid, [u]); await render(); } catch (ex) { this.alert(errorText(ex), false); }
          } }, 'Remove') : null));
      }
      const add = h('form', { class: 'inline' }, h('label', { for: 'gm-add' }, 'Add members'),
        h('input', { id: 'gm-add', placeholder: 'username, …' }), h('button', { type: 'submit' }, 'Add'));
      add.addEventListener('submit', async (e) => {
        e.preventDefault();
        try {
          await this.anom.addMembers(gid, splitNames(add.querySelector('input').value));
          await render();
        } catch (ex) { this.alert(errorText(ex), false); }
      });
      body.append(...[cc.name ? rename : null, users, cc.name ? add : null,
        h('p', { class: 'hint' }, (cc.members || []).length + ' devices in this chat')].filter(Boolean));
    };
    await render();
    return dlg;
  }

  async showSafety(username) {
    const body = h('div', { class: 'safety' }, h('p', { role: 'status' }, 'Loading…'));
    modal(this.root, 'Safety number with ' + username, body);
    const render = async () => {
      let list = [];
      try {
        list = await this.anom.safety(username);
      } catch (e) {
        clear(body);
        body.append(h('p', { role: 'alert' }, errorText(e)));
        return;
      }
      clear(body);
      body.append(h('p', { class: 'hint' }, 'Compare these digits with ' + username + '’s screen, in person or on a call you trust.'));
      // QR: scanning the other screen's code checks and marks the device.
      body.append(h('button', { type: 'button', id: 'safety-scan', onclick: async () => {
        const text = await scanQR(this.root, this.anom, 'Scan ' + username + '’s code', 'Point the camera at the safety number’s QR code on ' + username + '’s screen.');
        if (text === null) {
          return;
        }
        try {
          await this.anom.verifyScanned(username, text);
          await render();
          body.prepend(h('p', { class: 'scan-ok', role: 'status' }, '✔ The safety numbers match: ' + username + '’s device is marked verified.'));
        } catch (e) {
          const loud = e && e.code === 'safety-mismatch';
          this.alert(errorText(e), loud);
          body.prepend(h('p', { class: loud ? 'scan-bad' : 'error', role: 'alert' }, errorText(e)));
        }
      } }, 'Scan their code'));
      for (const d of list) {
        const groups = Array.isArray(d.number) ? d.number : String(d.number || '').split(/\s+/).filter(Boolean);
        const lines = [];
        for (let i = 0; i < groups.length; i += 4) {
          lines.push(groups.slice(i, i + 4).join(' '));
        }
        body.append(h('section', { class: 'device', 'aria-label': 'Device ' + d.deviceId },
          h('p', { class: 'dev-id' }, 'Device ' + d.deviceId.slice(0, 16) + (d.verified ? ' · ✔ verified' : ' · not verified')),
          h('pre', { class: 'number', 'aria-label': 'Safety number ' + groups.join(' ') }, lines.join('\n')),
          d.code ? await qrCanvas(this.anom, d.code, 'QR code of the safety number with device ' + d.deviceId.slice(0, 16)) : null,
          d.verified ? null : h('button', { type: 'button', class: 'primary', onclick: async () => {
            try { await this.anom.verify(username, d.deviceId); await render(); } catch (e) { this.alert(errorText(e), false); }
          } }, 'Mark verified')));
      }
    };
    await render();
  }

  async showEscrow() {
    const body = h('dl', { class: 'escrow' });
    modal(this.root, 'Escrow policy', body);
    try {
      const p = await this.anom.escrowPolicy();
      const row = (k, v) => [h('dt', {}, k), h('dd', {}, v === undefined || v === null ? '—' : String(v))];
      body.append(...[
        row('Verified', p.verified ? 'yes' : 'NO'),
        row('Policy', p.none ? 'no escrow' : (p.summary || '')),
        row('Notice', p.notice),
        row('Version', p.version),
        row('Threshold', p.threshold),
        row('Custodians', (p.custodians || []).map(fmtParty).join('; ')),
        row('Issuers', (p.issuers || []).map(fmtParty).join('; ')),
        row('Created', p.created ? new Date(p.created).toLocaleString() : undefined),
        row('Log entry', p.logIndex),
        row('Server key', p.serverKeyId)].flat());
    } catch (e) {
      body.append(h('p', { role: 'alert' }, errorText(e)));
    }
  }

  async showDevices() {
    const body = h('div', { class: 'devices' });
    modal(this.root, 'Your devices', body);
    try {
      const list = await this.anom.devices();
      body.append(h('ul', { 'aria-label': 'Your devices' }, list.map((d) => h('li', {},
        (d.self ? 'This device ' : 'Device ') + d.deviceId.slice(0, 16) + (d.expires ? ' · expires ' + new Date(d.expires).toLocaleDateString() : '')))));
    } catch (e) {
      body.append(h('p', { role: 'alert' }, errorText(e)));
    }
    const status = h('p', { role: 'status' });
    const pair = h('form', { class: 'inline' }, h('label', { for: 'pair-code' }, 'Add a device: its code'),
      h('input', { id: 'pair-code', autocomplete: 'off' }), h('button', { type: 'submit' }, 'Look up'));
    pair.addEventListener('submit', async (e) => {
      e.preventDefault();
      const code = pair.querySelector('input').value.trim();
      try {
        const r = await this.anom.lookupPairing(code);
        clear(status);
        status.append('Fingerprint on the new device must read: ', h('strong', {}, r.fingerprint), ' ',
          h('button', { type: 'button', class: 'primary', onclick: async () => {
            try {
              await this.anom.approveDevice(code, r.fingerprint);
              status.textContent = 'Approved: activate the new device now.';
            } catch (ex) { status.textContent = errorText(ex); }
          } }, 'It matches: approve'));
      } catch (ex) {
        status.textContent = errorText(ex);
      }
    });
    // QR: scanning the new device's pairing code; the invite for its
    // first run.
    const scan = h('button', { type: 'button', id: 'pair-scan', onclick: async () => {
      const text = await scanQR(this.root, this.anom, 'Scan the new device’s code', 'Point the camera at the pairing code’s QR code on the new device.');
      if (text !== null) {
        pair.querySelector('input').value = text.trim();
        pair.requestSubmit();
      }
    } }, 'Scan its code');
    const inviteQR = h('section', { class: 'invite-qr', 'aria-label': 'Invite for a further device' });
    body.append(pair, scan, status, inviteQR);
    try {
      const inv = await this.anom.invite();
      inviteQR.append(h('p', { class: 'hint' }, 'A further device: on its first run, Scan invite with this code (then pair it here).'),
        await qrCanvas(this.anom, inv.invite, 'QR code of this network’s invite', 'invite-qr'));
    } catch (e) {
      inviteQR.append(h('p', { role: 'alert' }, errorText(e)));
    }
  }

  showSettings() {
    const sel = h('select', { id: 'idle-min' }, IDLE_CHOICES.map((m) => h('option', { value: m }, m + ' min')));
    sel.value = String(idleChoice());
    sel.addEventListener('change', () => {
      this.idleMs = Number(sel.value) * 60000;
      localStorage.setItem(IDLE_KEY, sel.value);
      setShellIdle(this.idleMs);
    });
    const notif = h('button', { type: 'button', onclick: async () => {
      if ('Notification' in window) {
        notif.textContent = 'Notifications: ' + await Notification.requestPermission();
      }
    } }, 'Notifications: ' + ('Notification' in window ? Notification.permission : 'unsupported'));
    modal(this.root, 'Settings',
      h('label', { for: 'idle-min' }, 'Lock after idle'), sel,
      h('p', { class: 'hint' }, 'The app also locks when hidden. Notifications show only while it is open; the network uses no push service.'),
      notif, h('p', { id: 'about-release', role: 'note', 'aria-label': 'This app release' }, aboutRelease()));
  }
}

// idleChoice is the user's idle time in minutes (Settings): one of
// IDLE_CHOICES, 2 when none is kept.
function idleChoice() {
  const m = Number(localStorage.getItem(IDLE_KEY));
  return IDLE_CHOICES.includes(m) ? m : 2;
}

// idleTime is how long, in milliseconds, the messenger stays unlocked
// without a touch or a key: the user's choice, or globalThis.anomIdleMs,
// which only tests set (to lock after a few seconds).
function idleTime() {
  const t = Number(globalThis.anomIdleMs);
  return t > 0 ? t : idleChoice() * 60000;
}

// setShellIdle gives the shell's idle lock (anomShell in app.js) the
// messenger's idle time: without it the shell locked after its own
// 2 minutes whatever the user chose.
function setShellIdle(ms) {
  const s = globalThis.anomShell;
  if (s && typeof s.setIdleLock === 'function') {
    s.setIdleLock(ms / 1000);
  }
}

function previewOf(m) {
  if (thumbTarget(m)) {
    return 'Photo';
  }
  switch (m.kind) {
    case 'text': return m.text || '';
    case 'voice': return 'Voice note ' + duration(m.durationMs);
    case 'attachment': return (m.attachment && /^image\//.test(m.attachment.mime) ? 'Photo: ' : 'File: ') + (m.attachment ? m.attachment.name : '');
    default: return '';
  }
}

function timerLabel(s) {
  const t = TIMERS.find(([v]) => v === s);
  return t ? t[1] : s + ' s';
}

function splitNames(s) {
  return s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
}

function fmtParty(p) {
  if (p === null || typeof p !== 'object') {
    return String(p);
  }
  return Object.entries(p).map(([k, v]) => k + ': ' + v).join(', ');
}

// aboutRelease is the line naming the release this page runs and its
// entry in the network's transparency log (release.js checks it there).
function aboutRelease() {
  const r = globalThis.anomRelease;
  if (!r) {
    return 'App release: unknown (no service worker)';
  }
  const i = r.info();
  const version = String(i.version || 'unknown').slice(0, 16);
  if (i.logIndex === null || i.logIndex === undefined) {
    return 'App release ' + version + ': not yet verified in the transparency log';
  }
  return 'App release ' + version + ': transparency log entry ' + i.logIndex + ' (tree size ' + i.treeSize + ')';
}
