// Cancelling native calls: an async addon call takes a cancel token, and the call's AbortSignal
// cancels it (jobs.cc: a queued call never starts, a running one stops at its next block row). The
// addon then rejects with code 'ABORT_ERR', which becomes the AbortError every aborted call rejects with.

import { abortError, isNativeAbort } from '../abort';
import type { CallControl } from './backend';
import { loadNative } from './native';

/** A call's cancel token (the addon's cancelToken()). Opaque to JS. */
export interface CancelToken {
  readonly __brand: 'splash-cancel-token';
}

interface CancelAddon {
  cancelToken(): CancelToken;
  cancel(token: CancelToken): void;
}

function cancelAddon(): CancelAddon {
  const a = loadNative().addon as unknown as Partial<CancelAddon> | null;
  if (a === null || typeof a.cancelToken !== 'function' || typeof a.cancel !== 'function') {
    throw new Error('the native addon has no cancel tokens (a stale build: rebuild it)');
  }
  return a as CancelAddon;
}

/** Runs an async addon call with a cancel token that follows control.signal (none without a signal). */
export async function cancellable<C extends object, R>(control: CallControl | undefined, call: C,
  run: (call: C & { cancel?: CancelToken }) => Promise<R>): Promise<R> {
  const signal = control?.signal;
  if (signal === undefined) return run(call);
  const addon = cancelAddon();
  const token = addon.cancelToken();
  const onAbort = (): void => addon.cancel(token);
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) onAbort();
  try {
    return await run({ ...call, cancel: token });
  } catch (e) {
    throw isNativeAbort(e) ? abortError(signal) : e;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
