// Aborted calls: every async kernel call that sees its AbortSignal fire rejects with the same
// DOMException named 'AbortError' that fetch and the Node streams use, carrying the signal's reason
// as its cause.

/** The rejection of an aborted call. */
export function abortError(signal?: AbortSignal): DOMException {
  const error = new DOMException('The operation was aborted', 'AbortError');
  if (signal !== undefined && signal.reason !== undefined) {
    Object.defineProperty(error, 'cause', { value: signal.reason, configurable: true, writable: true });
  }
  return error;
}

/** Throws abortError(signal) when the signal has fired. */
export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw abortError(signal);
}

/** An error the native addon reports for a call its cancel token stopped. */
export function isNativeAbort(e: unknown): boolean {
  return e instanceof Error && (e as Error & { code?: unknown }).code === 'ABORT_ERR';
}
