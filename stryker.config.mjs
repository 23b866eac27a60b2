// npm run mutants:ts: StrykerJS mutation testing of the TypeScript mask logic, argument validation and
// the pure-JS backend. Unlike `npm run mutants`, which plants a hand-written list of bugs, this mutates
// every operator, condition and literal it can. Run on demand, never in CI.
//
// The whole set below takes well over an hour: a surviving mutant reruns every test that reached it,
// and the instrumented hot loops (block classification, the JS kernels) run several times slower. Run
// one module against its own tests instead, e.g.
//   npx stryker run --mutate lib/validate.ts --testFiles test/validate.test.ts,test/kernel.test.ts
//   npx stryker run --mutate lib/mask-spec.ts --testFiles test/mask-spec.test.ts
//   npx stryker run --mutate lib/mask-elements.ts --testFiles test/render-mask.test.ts,test/mask-info.test.ts
//   npx stryker run --mutate 'lib/mask.ts:264-399' --testFiles test/mask.test.ts,test/mask-info.test.ts
//   npx stryker run --mutate 'lib/backends/js.ts:117-165' --testFiles test/contract.test.ts,test/sinks-scale.test.ts
// (a few minutes each; `file:from-to` limits a run to those lines). build/ must hold the compiled addon as
// a real folder: it is copied into the sandbox. The HTML report lands in reports/mutation/ (git-ignored).

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'mocha',
  // The tests are TypeScript, loaded as `npm test` loads them (mocha --import=tsx).
  testRunnerNodeArgs: ['--import', 'tsx'],
  mochaOptions: {
    spec: [
      'test/mask.test.ts',
      'test/mask-info.test.ts',
      'test/mask-spec.test.ts',
      'test/validate.test.ts',
      'test/contract.test.ts',
      'test/kernel.test.ts',
      'test/reference.test.ts',
      'test/sinks-scale.test.ts',
      'test/fuzz.test.ts',
      'test/render-mask.test.ts',
      'test/js-backend.test.ts',
    ],
  },
  mutate: [
    'lib/mask.ts',
    'lib/mask-info.ts',
    'lib/mask-spec.ts',
    'lib/mask-elements.ts',
    'lib/validate.ts',
    'lib/backends/js.ts',
  ],
  // Each mutant runs only the tests that reached its code in the initial run.
  coverageAnalysis: 'perTest',
  // Mutants of module-level code (constant tables, the CLI help text) can only be tested by reloading
  // every test file, a minute or more each; they are reported as ignored. Drop this to include them.
  ignoreStatic: true,
  // One test process: the kernels are CPU-bound and the tests already spend seconds per file.
  concurrency: 1,
  // A mutant times out at timeoutFactor * (its tests' time in the initial run) + timeoutMS.
  timeoutMS: 10000,
  timeoutFactor: 2,
  dryRunTimeoutMinutes: 15,
  // build/ holds the compiled addon the native-backend tests load; the rest is not needed by the tests.
  ignorePatterns: ['dist', 'build/CMakeFiles', 'build-*', 'prebuilds', 'docs', 'examples', 'bench/out', 'bench/peers'],
  reporters: ['clear-text', 'html', 'progress-append-only'],
  clearTextReporter: { allowColor: false, reportTests: false, reportMutants: true, reportScoreTable: true },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
