// Worker threads for the JS backend's async calls. A call's plan (js.ts) lives on SharedArrayBuffers;
// each worker is sent the plan once and then unit ranges to run, and writes its units' output rows in
// place. Every unit is computed by one worker exactly as a sync call computes it, so results do not
// depend on the number of workers or on which worker ran what.
//
// The calling thread only posts messages, so its event loop stays free. Workers are unref'd while no call
// is in flight (they never keep a process alive) and ref'd while one is (a pending call keeps it alive,
// as a timer would). Where workers cannot start (no worker_threads, no SharedArrayBuffer, a bundler that
// moved the worker script, a loader the worker does not get), jsPoolFor returns null and calls run in
// time slices on the calling thread instead.

import { availableParallelism, cpus } from 'node:os';
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { abortError } from '../abort';

/** Below this many flops a call runs in slices: starting it on workers costs about a millisecond. */
const DEFAULT_MIN_WORK = 2 ** 26;

interface Settings {
  /** Worker threads; 0 runs every async call in slices on the calling thread. */
  workers: number;
  /** Calls with less work (flops, roughly) run in slices. */
  minWork: number;
}

const settings: Settings = {
  workers: Math.max(1, Math.min(8, typeof availableParallelism === 'function' ? availableParallelism() : cpus().length)),
  minWork: DEFAULT_MIN_WORK,
};

/** Changes the worker count or the work threshold (tests and benchmarks); returns the previous settings.
 *  A new worker count takes effect with the next call; the old workers end once idle. */
export function configureJsWorkers(next: Partial<Settings>): Settings {
  const previous = { ...settings };
  Object.assign(settings, next);
  if (next.workers !== undefined && next.workers !== previous.workers && pool !== null) {
    pool.retire();
    pool = null;
  }
  return previous;
}

let pool: JsPool | null = null;

/** The pool for a call of `work` flops, started on first use; null when the call should run in slices. */
export async function jsPoolFor(work: number): Promise<JsPool | null> {
  if (settings.workers < 1 || work < settings.minWork) return null;
  if (pool === null) pool = JsPool.start(settings.workers);
  const p = pool;
  if (p !== null && (await p.ready)) return p;
  // Workers that cannot start are not tried again until the settings change.
  if (pool === p) pool = null;
  settings.workers = 0;
  return null;
}

/**
 * A new worker running js-worker next to this module: the built .js directly; the TypeScript source
 * (tests run the package from source) through tsx's require hook, which Node 20 does not pass on to
 * worker threads. Throws where neither can be found.
 */
function newWorker(WorkerClass: typeof Worker): Worker {
  const script = path.join(__dirname, `js-worker${path.extname(__filename)}`);
  if (script.endsWith('.js')) return new WorkerClass(script);
  const hook = require.resolve('tsx/cjs');
  return new WorkerClass(`require(${JSON.stringify(hook)}); require(${JSON.stringify(script)});`, { eval: true });
}

interface Call {
  id: number;
  /** js.ts's plan and unit list, opaque here. */
  plan: object;
  units: Int32Array;
  total: number;
  /** Units per message: a few per worker keeps the load balanced with little messaging. */
  chunk: number;
  next: number;
  running: number;
  /** Shared flag a worker reads between compute tiles: set when the call is aborted. */
  stop: Int32Array;
  /** Workers that hold the plan. */
  sentTo: Set<Slot>;
  settle(error?: unknown): void;
}

interface Slot {
  worker: Worker;
  call: Call | null;
}

export class JsPool {
  readonly ready: Promise<boolean>;
  private readonly slots: Slot[] = [];
  private readonly queue: Call[] = [];
  private retired = false;
  private nextId = 0;

  private constructor(workers: Worker[]) {
    for (const worker of workers) this.slots.push({ worker, call: null });
    for (const slot of this.slots) {
      slot.worker.on('message', (m: { type: string }) => {
        if (m.type === 'done') this.done(slot);
      });
      slot.worker.on('error', (e) => this.fail(e));
      slot.worker.on('exit', () => this.fail(new Error('a JS backend worker thread exited')));
    }
    // Ref'd until they are ready, so that a call waiting for them keeps the process alive; then pump()
    // unrefs them whenever they are idle.
    this.ready = Promise.all(workers.map((w) => onceReady(w))).then((ok) => {
      if (!ok.every(Boolean)) {
        this.fail(new Error('a JS backend worker thread did not start'));
        return false;
      }
      this.pump();
      return true;
    });
  }

  /** Starts n workers; null where worker threads or shared memory are missing. */
  static start(n: number): JsPool | null {
    try {
      // Loaded here so that a runtime without worker threads still loads the package.
      const { Worker } = require('node:worker_threads') as typeof import('node:worker_threads');
      if (typeof SharedArrayBuffer !== 'function') return null;
      return new JsPool(Array.from({ length: n }, () => newWorker(Worker)));
    } catch {
      return null;
    }
  }

  /** Runs units [0, total) of the plan; rejects with an AbortError when the signal fires (the workers
   *  stop at their next compute tile and the partial results are dropped). */
  run(plan: object, units: Int32Array, total: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => call.settle(abortError(signal));
      const call: Call = {
        id: this.nextId++, plan, units, total, chunk: Math.max(1, Math.floor(total / (4 * this.slots.length))),
        next: 0, running: 0, stop: new Int32Array(new SharedArrayBuffer(4)), sentTo: new Set(),
        settle: (error?: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          const i = this.queue.indexOf(call);
          if (i < 0) return; // settled already
          this.queue.splice(i, 1);
          if (error !== undefined) {
            Atomics.store(call.stop, 0, 1);
            reject(error);
          } else {
            resolve();
          }
          this.release(call);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(call);
      if (total === 0) call.settle();
      this.pump();
    });
  }

  /** Ends the workers once they are idle (a settings change replaced this pool). */
  retire(): void {
    this.retired = true;
    for (const slot of this.slots) if (slot.call === null) void slot.worker.terminate();
  }

  /** Gives idle workers the next units, oldest call first; refs the workers while any call is in flight. */
  private pump(): void {
    for (const slot of this.slots) {
      if (slot.call !== null) continue;
      const call = this.queue.find((c) => c.next < c.total);
      if (call === undefined) break;
      if (!call.sentTo.has(slot)) {
        slot.worker.postMessage({ type: 'begin', id: call.id, plan: call.plan, units: call.units, stop: call.stop });
        call.sentTo.add(slot);
      }
      const from = call.next;
      call.next = Math.min(from + call.chunk, call.total);
      call.running++;
      slot.call = call;
      slot.worker.postMessage({ type: 'run', id: call.id, from, to: call.next });
    }
    const busy = this.slots.some((s) => s.call !== null);
    for (const slot of this.slots) {
      if (busy) slot.worker.ref();
      else slot.worker.unref();
    }
  }

  private done(slot: Slot): void {
    const call = slot.call as Call;
    slot.call = null;
    call.running--;
    if (this.retired) void slot.worker.terminate();
    if (call.running === 0 && call.next === call.total) call.settle();
    this.release(call);
    if (!this.retired) this.pump();
  }

  /** Lets the workers drop a settled call's plan once none of them runs its units. */
  private release(call: Call): void {
    if (this.queue.includes(call) || call.running > 0) return;
    for (const slot of call.sentTo) slot.worker.postMessage({ type: 'end', id: call.id });
    call.sentTo.clear();
  }

  private fail(error: unknown): void {
    if (this.retired) return;
    this.retire();
    if (pool === this) pool = null;
    for (const call of [...this.queue]) call.settle(error);
  }
}

function onceReady(worker: Worker): Promise<boolean> {
  return new Promise((resolve) => {
    worker.once('message', (m: { type: string }) => resolve(m.type === 'ready'));
    worker.once('error', () => resolve(false));
    worker.once('exit', () => resolve(false));
  });
}
