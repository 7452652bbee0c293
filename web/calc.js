// The calculator: a plain four-function calculator with percent, sign,
// decimal point and clear, and the PIN gesture that unlocks the app.
//
// Operations run left to right as they are entered, like a pocket
// calculator: 2 + 3 × 4 = gives 20. Pressing = again repeats the last
// operation (2 + 3 = = gives 8). Percent divides by a hundred, and after
// + or − takes that share of the first operand (200 + 10 % = gives 220).
//
// The PIN gesture: type the PIN's digits (nothing else) on a fresh entry,
// then press = twice within PIN_WINDOW_MS. To an onlooker this is a number
// and two presses of =, which shows the number: a wrong PIN is just that
// result. Calculator does not know whether a PIN is right; it hands the
// digits to onPin.

/** Most digits an entry may have. */
export const MAX_DIGITS = 15;

/** Fewest and most digits taken as a PIN (the client's minimum is 6). */
export const PIN_MIN_DIGITS = 6;
export const PIN_MAX_DIGITS = MAX_DIGITS;

/** The two presses of = must come within this many milliseconds. */
export const PIN_WINDOW_MS = 1000;

const OPS = new Set(['+', '-', '*', '/']);

/**
 * Formats a result for the display: at most 15 significant digits (so
 * 0.1 + 0.2 shows 0.3), exponent notation only for very large or very
 * small magnitudes. Returns "Error" for a non-finite value.
 * @param {number} x
 * @returns {string}
 */
export function formatNumber(x) {
  if (!Number.isFinite(x)) {
    return 'Error';
  }
  let r = Number(x.toPrecision(15));
  if (Object.is(r, -0)) {
    r = 0;
  }
  const a = Math.abs(r);
  if (a !== 0 && (a >= 1e15 || a < 1e-9)) {
    return r.toExponential(8).replace(/\.?0+e/, 'e');
  }
  let s = String(r);
  if (s.includes('e')) {
    // String() uses exponents below 1e-6; spell those out.
    s = r.toFixed(12).replace(/\.?0+$/, '');
  }
  return s;
}

function apply(op, a, b) {
  switch (op) {
    case '+': return a + b;
    case '-': return a - b;
    case '*': return a * b;
    case '/': return b === 0 ? NaN : a / b;
  }
  throw new Error(`unknown operation ${op}`);
}

/** The calculator's state machine. */
export class Calculator {
  /**
   * @param {{onPin?: (pin: string) => void, now?: () => number}} [opts]
   *   onPin receives the digits of a PIN gesture; now is the clock.
   */
  constructor(opts = {}) {
    this.onPin = opts.onPin || (() => {});
    this.now = opts.now || (() => Date.now());
    this.allClear();
  }

  allClear() {
    this.entry = '0';     // what the display shows
    this.typing = false;  // digits append to entry
    this.operand = false; // entry holds an operand given after the pending operation
    this.acc = null;      // the first operand of a pending operation
    this.op = null;       // the pending operation
    this.last = null;     // {op, b}: what a repeated = does
    this.error = false;
    this.pin = null;      // the digits of an entry typed as digits alone (leading zeros kept), else null
    this.pinAt = -Infinity;
    this.pinCandidate = '';
  }

  /** The text of the display. */
  get display() {
    return this.error ? 'Error' : this.entry;
  }

  /** The pending operation while its second operand is awaited, else null. */
  get selectedOp() {
    return this.op && !this.operand && !this.error ? this.op : null;
  }

  /** The clear key's label: C clears the entry, AC everything. */
  get clearLabel() {
    return this.typing && this.entry !== '0' ? 'C' : 'AC';
  }

  /**
   * Presses a key: a digit "0"–"9", ".", "+", "-", "*", "/", "%",
   * "sign", "=", "clear" (C or AC, as labelled) or "back" (deletes the
   * last digit typed). Unknown keys are ignored.
   * @param {string} key
   */
  press(key) {
    const candidate = this.pinCandidate;
    const candidateAt = this.pinAt;
    this.pinCandidate = '';
    if (key.length === 1 && key >= '0' && key <= '9') {
      this.digit(key);
      return;
    }
    if (key === 'back') {
      this.back();
      return;
    }
    if (key === '=') {
      this.equals(candidate, candidateAt);
    } else if (OPS.has(key)) {
      this.operator(key);
    } else {
      switch (key) {
        case '.': this.point(); break;
        case '%': this.percent(); break;
        case 'sign': this.sign(); break;
        case 'clear': this.clear(); break;
      }
    }
    this.pin = null;
  }

  value() {
    return Number(this.entry);
  }

  startEntry(text) {
    if (!this.op) {
      // A new number after a result starts a new calculation.
      this.last = null;
    }
    this.entry = text;
    this.typing = true;
    this.operand = true;
  }

  digit(d) {
    if (this.error) {
      this.allClear();
    }
    if (!this.typing) {
      this.startEntry(d);
      this.pin = d;
      return;
    }
    if (this.entry === '0') {
      this.entry = d;
    } else if (this.entry === '-0') {
      this.entry = '-' + d;
    } else if (this.entry.replace(/[-.]/g, '').length < MAX_DIGITS) {
      this.entry += d;
    } else {
      return;
    }
    if (this.pin !== null && this.pin.length < PIN_MAX_DIGITS) {
      this.pin += d;
    } else {
      this.pin = null;
    }
  }

  point() {
    if (this.error) {
      this.allClear();
    }
    if (!this.typing) {
      this.startEntry('0.');
    } else if (!this.entry.includes('.')) {
      this.entry += '.';
    }
  }

  back() {
    if (this.error || !this.typing) {
      return;
    }
    this.entry = this.entry.slice(0, -1);
    if (this.pin !== null) {
      this.pin = this.pin.slice(0, -1);
    }
    if (this.entry === '' || this.entry === '-') {
      this.entry = '0';
    }
  }

  sign() {
    if (this.error) {
      return;
    }
    if (this.op && !this.operand) {
      // Right after an operator: the second operand starts as −0.
      this.startEntry('-0');
      return;
    }
    this.entry = this.entry.startsWith('-') ? this.entry.slice(1) : '-' + this.entry;
  }

  clear() {
    if (this.clearLabel === 'C') {
      // C: the entry only; a pending operation stays.
      this.entry = '0';
      this.pin = null;
      return;
    }
    this.allClear();
  }

  percent() {
    if (this.error) {
      return;
    }
    const x = this.value();
    const v = this.op === '+' || this.op === '-' ? (this.acc * x) / 100 : x / 100;
    this.show(v);
    this.operand = true;
  }

  // show puts a computed value on the display; the next digit starts a
  // new entry.
  show(v) {
    const s = formatNumber(v);
    if (s === 'Error') {
      this.fail();
      return;
    }
    this.entry = s;
    this.typing = false;
  }

  fail() {
    this.allClear();
    this.error = true;
  }

  operator(op) {
    if (this.error) {
      return;
    }
    if (this.op && this.operand) {
      const r = apply(this.op, this.acc, this.value());
      this.show(r);
      if (this.error) {
        return;
      }
    }
    // Pressing operators in a row: the last one counts.
    this.acc = this.value();
    this.op = op;
    this.last = null;
    this.typing = false;
    this.operand = false;
  }

  equals(candidate, candidateAt) {
    if (this.error) {
      return;
    }
    const t = this.now();
    if (candidate && !this.op && t - candidateAt <= PIN_WINDOW_MS) {
      // The second = of the PIN gesture. The display stays the number.
      this.onPin(candidate);
      return;
    }
    const digits = this.pinFromEntry();
    if (this.op) {
      const b = this.operand ? this.value() : this.acc;
      this.last = { op: this.op, b };
      const r = apply(this.op, this.acc, b);
      this.op = null;
      this.acc = null;
      this.show(r);
    } else if (this.last) {
      this.show(apply(this.last.op, this.value(), this.last.b));
    } else {
      this.show(this.value());
    }
    if (digits) {
      this.pinCandidate = digits;
      this.pinAt = t;
    }
  }

  // pinFromEntry returns the digits of the entry when they were typed
  // alone on a fresh calculation (the first = of the PIN gesture), else "".
  pinFromEntry() {
    const p = this.pin;
    if (!this.typing || this.op || this.last || p === null) {
      return '';
    }
    if (!/^\d+$/.test(p) || p.length < PIN_MIN_DIGITS || p.length > PIN_MAX_DIGITS) {
      return '';
    }
    return p;
  }
}
