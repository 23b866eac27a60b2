// Cancelling native calls: an async addon call takes a cancel token, and the call's AbortSignal
// cancels it (jobs.cc: a queued call never starts, a running one stops at its next block row). The
// addon then rejects with code 'ABORT_ERR', which becomes the AbortError every aborted call rejects with.

import { abortError, isNativeAbort } from '../abort';
import type { CallControl } from './backend';
import type { CancelExports, CancelToken } from './native';

/** Runs an async call of `addon` with a cancel token that follows control.signal (none without a signal). */
export async function cancellable<C extends { cancel: CancelToken | null }, R>(addon: CancelExports,
  control: CallControl | undefined, call: C, run: (call: C) => Promise<R>): Promise<R> {
  const signal = control?.signal;
  if (signal === undefined) return run(call);
  const token = addon.cancelToken();
  const onAbort = (): void => addon.cancel(token);
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) onAbort();
  try {
    // Set in place rather than spread into a copy: a spread gives each call a hidden class of its own.
    call.cancel = token;
    return await run(call);
  } catch (e) {
    throw isNativeAbort(e) ? abortError(signal) : e;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
