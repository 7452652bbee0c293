// Small DOM helpers for the messenger's UI. Text always goes in as
// textContent (never HTML), so a message can carry no markup.

// h makes an element: h('button', {class: 'x', 'aria-label': 'Send',
// onclick: fn}, 'text', child, ...). Attributes starting with "on" are
// event listeners; false/null attributes are left out.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) {
      continue;
    }
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) {
      continue;
    }
    if (Array.isArray(c)) {
      append(el, c);
    } else if (c instanceof Node) {
      el.appendChild(c);
    } else {
      el.appendChild(document.createTextNode(String(c)));
    }
  }
}

// clear removes el's children.
export function clear(el) {
  while (el.firstChild) {
    el.removeChild(el.firstChild);
  }
}

// clock formats a time (ms since the epoch): the hour today, the date and
// hour otherwise.
export function clock(ms) {
  if (!ms) {
    return '';
  }
  const d = new Date(ms);
  const now = new Date();
  const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === now.toDateString()) {
    return hm;
  }
  return d.toLocaleDateString([], { day: 'numeric', month: 'short' }) + ' ' + hm;
}

// duration formats milliseconds as m:ss.
export function duration(ms) {
  const s = Math.round((ms || 0) / 1000);
  return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
}

// size formats a byte count.
export function size(n) {
  if (n < 1024) {
    return n + ' B';
  }
  if (n < 1024 * 1024) {
    return (n / 1024).toFixed(1) + ' KiB';
  }
  return (n / 1024 / 1024).toFixed(1) + ' MiB';
}

// modal shows a <dialog> with a title and body (closed with Escape or
// its Close button) and returns it; it is removed from the page when
// closed.
export function modal(root, title, ...body) {
  const id = 'dlg-' + Math.random().toString(36).slice(2);
  const close = h('button', { type: 'button', class: 'close', 'aria-label': 'Close' }, '×');
  const dlg = h('dialog', { class: 'm-dialog', 'aria-labelledby': id },
    h('header', {}, h('h2', { id }, title), close), h('div', { class: 'body' }, ...body));
  close.addEventListener('click', () => dlg.close());
  dlg.addEventListener('close', () => dlg.remove());
  root.appendChild(dlg);
  dlg.showModal();
  return dlg;
}
