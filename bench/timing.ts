// Timing policy shared by bench/cpu.ts and its peers: one untimed warm-up, then medians.

export interface Timing {
  ms: number; // median of `times`
  reps: number;
  times: number[];
  cores: number; // this process's CPU time / wall time over the timed runs: how many cores it kept busy
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Repetitions for a case whose first timed run took `firstMs`: 5, or 3 past 2 s, or 1 past 8 s. */
export function repsFor(firstMs: number): number {
  return firstMs > 8000 ? 1 : firstMs > 2000 ? 3 : 5;
}

/**
 * One untimed warm-up (first-touch allocation, JIT, thread-pool start-up), then timed runs: the
 * first timed run sets how many there are (repsFor), and the result is their median. `cores` is
 * a disturbance check: a multi-threaded kernel that gets fewer cores than it has threads was
 * sharing the machine with other work.
 */
export async function timeRuns(run: () => Promise<unknown> | unknown, fixedReps?: number): Promise<Timing> {
  await run();
  const times: number[] = [];
  const once = async () => {
    const t = performance.now();
    await run();
    times.push(performance.now() - t);
  };
  const cpu0 = process.cpuUsage();
  await once();
  const reps = fixedReps ?? repsFor(times[0]);
  while (times.length < reps) await once();
  const cpu = process.cpuUsage(cpu0);
  const wallMs = times.reduce((a, b) => a + b, 0);
  return { ms: median(times), reps, times, cores: (cpu.user + cpu.system) / 1000 / wallMs };
}
