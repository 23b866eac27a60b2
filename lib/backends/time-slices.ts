// Work written as a generator of steps (the JS backend yields after every tile), run either to the
// end on the calling thread or in slices that hand the event loop back between them.

import { throwIfAborted } from '../abort';

/** Longest run of steps between two turns of the event loop. */
const SLICE_MS = 4;

/** Runs every step now and returns the result. */
export function runToEnd<T>(steps: Generator<void, T, void>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Runs the steps in slices of about SLICE_MS, letting timers and I/O run in between; an aborted
 *  signal stops the work between two slices. */
export async function runInSlices<T>(steps: Generator<void, T, void>, signal?: AbortSignal): Promise<T> {
  for (;;) {
    throwIfAborted(signal);
    const start = performance.now();
    let r = steps.next();
    while (!r.done && performance.now() - start < SLICE_MS) r = steps.next();
    if (r.done) return r.value;
    await nextTurn();
  }
}
