// Seeded pseudo-random numbers for demos, tests and benchmarks (never Math.random: runs must repeat).

/** mulberry32: a tiny 32-bit generator with good statistical quality for test data. Returns a
 *  function giving uniform numbers in [0, 1), the same sequence for the same seed (taken as uint32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` standard-normal samples (Box–Muller) times `scale` (default 1); the same for the same seed. */
export function randomNormal(n: number, seed: number, scale = 1): Float32Array {
  const rand = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - rand();
    const r = Math.sqrt(-2 * Math.log(u)) * scale;
    const th = 2 * Math.PI * rand();
    out[i] = r * Math.cos(th);
    if (i + 1 < n) out[i + 1] = r * Math.sin(th);
  }
  return out;
}
