// A worker thread of the JS backend's pool (js-pool.ts): it keeps the plans it is sent and runs the
// unit ranges it is asked for, stopping between compute tiles once a call's stop flag is set.

import { parentPort } from 'node:worker_threads';
import { makeScratch, runUnit, type Plan, type Scratch } from './js';

interface Held {
  plan: Plan;
  units: Int32Array;
  stop: Int32Array;
  scratch: Scratch;
}

type Message =
  | { type: 'begin'; id: number; plan: Plan; units: Int32Array; stop: Int32Array }
  | { type: 'run'; id: number; from: number; to: number }
  | { type: 'end'; id: number };

const held = new Map<number, Held>();

function run(h: Held, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const steps = runUnit(h.plan, h.scratch, h.units, i);
    while (Atomics.load(h.stop, 0) === 0 && !steps.next().done);
  }
}

const port = parentPort;
if (port !== null) {
  port.on('message', (m: Message) => {
    if (m.type === 'begin') {
      held.set(m.id, { plan: m.plan, units: m.units, stop: m.stop, scratch: makeScratch(m.plan) });
    } else if (m.type === 'run') {
      run(held.get(m.id) as Held, m.from, m.to);
      port.postMessage({ type: 'done' });
    } else {
      held.delete(m.id);
    }
  });
  port.postMessage({ type: 'ready' });
}
