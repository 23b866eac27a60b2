// npm run mutants [-- --only id1,id2] [--list]: plants realistic bugs one at a time, rebuilds what they
// touch, runs the tests that should catch them, and prints which bugs the suite kills and which survive.
// Run on demand (minutes per C++ mutant), not in CI. Every survivor needs a test or a written reason.
// `npm run mutants:ts` runs StrykerJS over the TS mask, validation and JS-backend code (stryker.config.mjs).
//
// C++ mutants build the CPU addon into build-mutants/ and the tests load it through SPLASH_ADDON_PATH, so
// build/ is never touched; GPU mutants are caught (or not) by the emulator test, which compiles the GPU
// sources itself. Each file is restored after its mutant, also when the run is interrupted.

import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

interface Mutant {
  id: string;
  about: string;
  file: string;
  find: string;
  replace: string;
  build: 'none' | 'cpu';
  /** mocha arguments: test files, optionally with -g. */
  tests: string[];
  /** Why a survivor is acceptable, when it is. */
  knownSurvivor?: string;
}

const MUTANTS: Mutant[] = [
  {
    id: 'cpu-segment-skip-guard',
    about: 'CPU segment-range block skipping also with a finite maskValue',
    file: 'native/cpu/segments.cc',
    find: '  if (!(p.mask_value < -1e30f)) return;\n',
    replace: '',
    build: 'cpu',
    tests: ['test/contract.test.ts', '-g', 'maskValue'],
  },
  {
    id: 'gpu-segment-skip-guard',
    about: 'GPU backward plan skips segment ranges with a finite maskValue',
    file: 'native/gpu/bwd_plan.h',
    find: ' && p.mask_value <= kSkipSafeMaskValue;',
    replace: ';',
    build: 'none',
    tests: ['test/gpu.test.ts', '-g', 'emulate'],
  },
  {
    id: 'gpu-fwd-segment-skip-guard',
    about: 'GPU forward plan skips segment ranges with a finite maskValue',
    file: 'native/gpu/plan.h',
    find: ' && p.mask_value <= kSkipSafeMaskValue;',
    replace: ';',
    build: 'none',
    tests: ['test/gpu.test.ts', '-g', 'emulate'],
  },
  {
    id: 'gpu-one-segment-tile',
    about: 'a GPU tile counts as one segment when its rows and keys each hold one, not the same one',
    file: 'native/gpu/mask.cuh',
    find: '*uniform = lo == hi && q_seg_lo == q_seg_hi && lo == q_seg_lo;',
    replace: '*uniform = lo == hi && q_seg_lo == q_seg_hi;',
    build: 'none',
    tests: ['test/gpu.test.ts', '-g', 'emulate'],
  },
  {
    id: 'gpu-bwd-one-segment-tile',
    about: 'the dk/dv walk counts a block as one segment when its queries and keys each hold one, not the same one',
    file: 'native/gpu/bwd_mma_sm80.cuh',
    find: 'uniform = lo == hi && kv_seg_lo == kv_seg_hi && lo == kv_seg_lo;',
    replace: 'uniform = lo == hi && kv_seg_lo == kv_seg_hi;',
    build: 'none',
    tests: ['test/gpu.test.ts', '-g', 'emulate'],
  },
  {
    id: 'gpu-softcap-derivative',
    about: 'the tensor-core backward leaves out the soft cap\'s derivative',
    file: 'native/gpu/bwd_mma_sm80.cuh',
    find: '    dcap = 1.f - t * t;',
    replace: '    (void)t;',
    build: 'none',
    tests: ['test/gpu.test.ts', '-g', 'emulate'],
  },
  {
    id: 'js-recomputed-residuals',
    about: 'JS backward recomputes out / logsumexp instead of using the given residuals',
    file: 'lib/backends/js.ts',
    find: '  const lse = values(args.logsumexp);\n  const di = rowDots(values(args.out), dout, batch * heads * sq, dv);',
    replace: '  const fresh = runToEnd(forwardSteps(cfg, shape, args));\n  const lse = values(fresh.logsumexp);\n' +
      '  const di = rowDots(values(fresh.out), dout, batch * heads * sq, dv);',
    build: 'none',
    tests: ['test/contract.test.ts', '-g', 'residuals'],
  },
  {
    id: 'backward-throws-sync',
    about: 'kernel.backward() throws synchronously instead of rejecting',
    file: 'lib/kernel.ts',
    find: '  async backward(a: BackwardInputs): Promise<Gradients> {',
    replace: '  backward(a: BackwardInputs): Promise<Gradients> {',
    build: 'none',
    tests: ['test/contract.test.ts', '-g', 'rejects'],
  },
  {
    id: 'reference-cap-after-mask',
    about: 'the reference applies the soft cap after masking',
    file: 'lib/backends/reference.ts',
    find: 'const l = allowed[j] ? cap(raw[j], opts.softCap) : opts.maskValue;',
    replace: 'const l = cap(allowed[j] ? raw[j] : opts.maskValue, opts.softCap);',
    build: 'none',
    tests: ['test/reference.test.ts'],
  },
  {
    id: 'avx512-bf16-truncated-p',
    about: 'bf16 P truncated instead of rounded in the AVX-512 bf16 path',
    file: 'native/cpu/isa_avx512_bf16.cc',
    find: '      const __m512i a = Avx512::bf16_bits(_mm512_loadu_ps(lo + j));',
    replace: '      const __m512i a = _mm512_srli_epi32(_mm512_castps_si512(_mm512_loadu_ps(lo + j)), 16);',
    build: 'cpu',
    tests: ['test/cpu-backend.test.ts', '-g', 'bfloat16 rounding is unbiased'],
  },
  {
    id: 'cpu-cancel-ignored',
    about: 'the CPU forward never polls the cancel flag',
    file: 'native/cpu/forward.cc',
    find: '                 stop_if_cancelled(options);\n',
    replace: '',
    build: 'cpu',
    tests: ['test/reliability.test.ts', '-g', 'cpu: an abort during'],
  },
  {
    id: 'dispatcher-on-js-thread',
    about: 'async CPU calls run the kernel on the JS thread before returning',
    file: 'native/addon/cpu_binding.cc',
    find: '  return submit(env, std::move(job), token);',
    replace: '  run_now(env, *job);\n  return submit(env, std::move(job), token);',
    build: 'cpu',
    tests: ['test/reliability.test.ts', '-g', 'event loop'],
  },
  {
    id: 'schedule-col-order-unchecked',
    about: 'the shared schedule check accepts columns out of order',
    file: 'native/include/splash/schedule_check.h',
    find: '        if (i > s.row_ptr[row] && col <= s.col_idx[i - 1]) {',
    replace: '        if (false) {',
    build: 'cpu',
    tests: ['test/cpu-backend.test.ts', '-g', 'columns out of order'],
  },
  {
    id: 'call-queue-lifo',
    about: 'calls waiting for a slot start last-in first-out',
    file: 'lib/call-queue.ts',
    find: '    waiting.shift()?.start();',
    replace: '    waiting.pop()?.start();',
    build: 'none',
    tests: ['test/reliability.test.ts', '-g', 'maxInFlight'],
  },
  {
    id: 'js-slices-ignore-abort',
    about: 'the JS backend keeps computing after its signal fires',
    file: 'lib/backends/time-slices.ts',
    find: '    throwIfAborted(signal);\n    const start',
    replace: '    const start',
    build: 'none',
    tests: ['test/reliability.test.ts', '-g', 'js: an abort during'],
  },
  {
    id: 'cpu-scale-missing-in-ds',
    about: 'the CPU backward forgets the scale on the gradient of the dots',
    file: 'native/cpu/tile_kernels.h',
    find: '      if (scaled) ds = I::mul(ds, scale);\n',
    replace: '',
    build: 'cpu',
    tests: ['test/sinks-scale.test.ts', '-g', 'cpu'],
  },
  {
    id: 'cpu-sink-not-in-denominator',
    about: 'the CPU forward starts rows at l = 0 with a sink (the sink drops out of the denominator)',
    file: 'native/cpu/forward.cc',
    find: '    s.l[i] = p.sinks != nullptr ? 1.0f : 0.0f;',
    replace: '    s.l[i] = 0.0f;',
    build: 'cpu',
    tests: ['test/sinks-scale.test.ts', '-g', 'cpu'],
  },
  {
    id: 'sink-gradient-sign',
    about: 'dsinks with the wrong sign',
    file: 'lib/merge.ts',
    find: '    d[h] -= Math.exp(sinks[h] - lse[r]) * di;',
    replace: '    d[h] += Math.exp(sinks[h] - lse[r]) * di;',
    build: 'none',
    tests: ['test/sinks-scale.test.ts', '-g', 'js'],
  },
  {
    id: 'merge-ignores-weights',
    about: 'mergeAttention averages the parts instead of weighting them by exp(lse_i - lse)',
    file: 'lib/merge.ts',
    find: '      const w = Math.exp(lses[i][r] - total);',
    replace: '      const w = 1 / parts.length;',
    build: 'none',
    tests: ['test/context-parallel.test.ts'],
  },
  {
    id: 'local-mask-window-off-by-one',
    about: 'LocalMask drops the left edge of its window',
    file: 'lib/mask.ts',
    find: '    return this.lower === null ? 0 : q - this.lower;',
    replace: '    return this.lower === null ? 0 : q - this.lower + 1;',
    build: 'none',
    tests: ['test/mask.test.ts'],
  },
];

const root = path.join(__dirname, '..');
const addonOut = 'build-mutants';

function sh(cmd: string, args: string[], env: Record<string, string> = {}): number {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, ...env } });
  return r.status ?? 1;
}

function buildCpu(): boolean {
  return sh('npx', ['cmake-js', 'build', '--out', addonOut], { SPLASH_CUDA: '0', SPLASH_HIP: '0', SPLASH_WERROR: '0' }) === 0;
}

function runTests(m: Mutant): boolean {
  const env: Record<string, string> = m.build === 'cpu' ? { SPLASH_ADDON_PATH: path.join(root, addonOut, 'Release', 'splash.node') } : {};
  return sh('npx', ['mocha', '--import=tsx', '--bail', ...m.tests], env) === 0;
}

function main(): void {
  const onlyAt = process.argv.indexOf('--only');
  const only = onlyAt >= 0 ? new Set(process.argv[onlyAt + 1].split(',')) : null;
  if (process.argv.includes('--list')) {
    for (const m of MUTANTS) console.log(`${m.id.padEnd(30)} ${m.about}`);
    return;
  }
  const chosen = MUTANTS.filter((m) => only === null || only.has(m.id));
  // The unmutated build must pass the same tests, or a "kill" would mean nothing.
  if (chosen.some((m) => m.build === 'cpu') && !buildCpu()) throw new Error(`the unmutated CPU addon does not build into ${addonOut}/`);
  const rows: string[] = [];
  let survivors = 0;
  for (const m of chosen) {
    const file = path.join(root, m.file);
    const original = readFileSync(file, 'utf8');
    const at = original.indexOf(m.find);
    if (at < 0 || original.indexOf(m.find, at + 1) >= 0) throw new Error(`${m.id}: the text to mutate is not found exactly once in ${m.file}`);
    if (!runTests(m)) throw new Error(`${m.id}: the tests fail without the mutant, so they cannot judge it`);
    const restore = () => writeFileSync(file, original);
    process.once('SIGINT', () => { restore(); process.exit(130); });
    let verdict: string;
    try {
      writeFileSync(file, original.slice(0, at) + m.replace + original.slice(at + m.find.length));
      if (m.build === 'cpu' && !buildCpu()) verdict = 'killed (does not build)';
      else verdict = runTests(m) ? 'SURVIVED' : 'killed';
    } finally {
      restore();
      // The next mutant's baseline check must run the unmutated addon again.
      if (m.build === 'cpu' && !buildCpu()) throw new Error(`${m.id}: the restored sources do not build`);
    }
    if (verdict === 'SURVIVED') survivors++;
    const note = verdict === 'SURVIVED' && m.knownSurvivor ? ` — known: ${m.knownSurvivor}` : '';
    rows.push(`${verdict.padEnd(24)} ${m.id.padEnd(30)} ${m.about}${note}`);
    console.log(rows[rows.length - 1]);
  }
  console.log(`\n${chosen.length - survivors} of ${chosen.length} mutants killed; ${survivors} survived`);
}

main();
