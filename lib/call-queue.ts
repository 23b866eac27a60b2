// The limit on kernel calls in flight (setConcurrency): async calls beyond it wait in FIFO order,
// and a waiting call whose signal fires leaves the queue at once. The limit holds for the JavaScript
// thread that sets it (the main thread, or each worker on its own); native work from every thread
// also shares the addon's one dispatcher.

import { abortError, throwIfAborted } from './abort';
import { describeValue } from './describe-value';

/** Options of {@link setConcurrency}. An unknown key is a TypeError naming it. */
export interface ConcurrencyOptions {
  /** Most async kernel calls running at once; Infinity (the default) for no limit beyond the compute pool. */
  maxInFlight?: number;
}

let maxInFlight = Infinity;
let inFlight = 0;
const waiting: { start: () => void }[] = [];

/**
 * Sets how many async kernel calls (forward, backward, vjp) may run at once in this JavaScript thread;
 * further calls wait and start in the order they were made. A waiting call whose signal fires leaves
 * the queue at once. The main thread and each worker keep their own limit. forwardSync and
 * backwardSync are not counted. Leaving `maxInFlight` out changes nothing (a way to read the setting).
 *
 * @returns the setting before this call.
 * @throws TypeError when `opts` is not an object, has another key than maxInFlight, or maxInFlight is
 *   not a number.
 * @throws RangeError when maxInFlight is neither a positive integer nor Infinity.
 * @example
 * ```ts
 * const previous = setConcurrency({ maxInFlight: 2 }); // at most two kernel calls run at once
 * // …
 * setConcurrency(previous);
 * ```
 */
export function setConcurrency(opts: ConcurrencyOptions): Required<ConcurrencyOptions> {
  if (opts === null || typeof opts !== 'object') {
    throw new TypeError(`opts: expected an object { maxInFlight }, got ${describeValue(opts)}`);
  }
  for (const key of Object.keys(opts)) {
    if (key !== 'maxInFlight') throw new TypeError(`opts.${key}: unknown option (expected maxInFlight)`);
  }
  const previous = { maxInFlight };
  const n = opts.maxInFlight;
  if (n !== undefined) {
    if (typeof n !== 'number') throw new TypeError(`opts.maxInFlight: expected a positive integer or Infinity, got ${describeValue(n)}`);
    if (!(n === Infinity || (Number.isInteger(n) && n >= 1))) {
      throw new RangeError(`opts.maxInFlight: expected a positive integer or Infinity, got ${n}`);
    }
    maxInFlight = n;
    startWaiting();
  }
  return previous;
}

function startWaiting(): void {
  while (inFlight < maxInFlight && waiting.length > 0) {
    inFlight++;
    waiting.shift()?.start();
  }
}

/** Waits for a slot, runs `call`, and frees the slot when it settles. Rejects with an AbortError when the
 *  signal fires before the call starts, or before it settles (never with a partial result). */
export async function runInFlight<T>(signal: AbortSignal | undefined, call: () => Promise<T>): Promise<T> {
  throwIfAborted(signal);
  if (inFlight < maxInFlight && waiting.length === 0) {
    inFlight++;
  } else {
    await new Promise<void>((resolve, reject) => {
      const entry = { start: () => { signal?.removeEventListener('abort', onAbort); resolve(); } };
      const onAbort = (): void => {
        const i = waiting.indexOf(entry);
        if (i >= 0) waiting.splice(i, 1);
        reject(abortError(signal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      waiting.push(entry);
    });
  }
  try {
    const result = await call();
    throwIfAborted(signal);
    return result;
  } finally {
    inFlight--;
    startWaiting();
  }
}
