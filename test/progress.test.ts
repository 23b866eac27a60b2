// The benchmarks' progress bar: drawn only for a terminal (never for pipes, CI or --json), lifted
// around table lines, and its text (fraction, label, time left) from a fake clock.

import assert from 'node:assert/strict';
import { ProgressBar, shouldShowProgress, type ProgressStream } from '../lib/progress';

function fakeStream(isTTY: boolean, columns?: number): ProgressStream & { chunks: string[] } {
  const chunks: string[] = [];
  return { isTTY, columns, chunks, write: (c: string) => chunks.push(c) > 0 };
}

describe('progress bar', () => {
  it('is shown only on a TTY, outside CI and without --json', () => {
    assert.equal(shouldShowProgress(fakeStream(true), {}), true);
    assert.equal(shouldShowProgress(fakeStream(false), {}), false);
    assert.equal(shouldShowProgress({ write: () => true }, {}), false);
    assert.equal(shouldShowProgress(fakeStream(true), { CI: 'true' }), false);
    assert.equal(shouldShowProgress(fakeStream(true), {}, true), false);
  });

  it('writes nothing at all when not on a TTY, and log() still prints', () => {
    const stream = fakeStream(false);
    const printed: string[] = [];
    const bar = new ProgressBar(10, { stream, print: (l) => printed.push(l) });
    bar.update('fwd causal S=1024');
    bar.advance(3);
    bar.log('a table line');
    bar.finish();
    assert.deepEqual(stream.chunks, []);
    assert.deepEqual(printed, ['a table line']);
  });

  it('draws on a TTY, lifts itself around printed lines and clears at the end', () => {
    const stream = fakeStream(true, 100);
    const printed: string[] = [];
    let now = 0;
    // The terminal decision without the runner's own CI variable (CI runs this suite with CI=true).
    const enabled = shouldShowProgress(stream, {});
    const bar = new ProgressBar(4, { stream, enabled, print: (l) => printed.push(`${stream.chunks.length}:${l}`), now: () => now });
    now = 1000;
    bar.update('fwd full S=512');
    assert.equal(stream.chunks.length, 1);
    assert.match(stream.chunks[0], /^\r\x1b\[2K\[·{24}\] 0 % {2}fwd full S=512 {2}1 s$/);
    now = 3000;
    bar.advance(1);
    // A quarter done in 3 s: about 9 s left.
    assert.match(stream.chunks[1], /^\r\x1b\[2K\[█{6}·{18}\] 25 % {2}fwd full S=512 {2}3 s, about 9 s left$/);
    bar.log('row');
    assert.equal(stream.chunks[2], '\r\x1b[2K', 'the bar is cleared before the line');
    assert.deepEqual(printed, ['3:row']);
    assert.match(stream.chunks[3], /^\r\x1b\[2K\[█{6}/, 'and drawn again after it');
    bar.advance(3);
    assert.match(stream.chunks[4], /\[█{24}\] 100 % {2}fwd full S=512 {2}3 s$/);
    bar.finish();
    assert.equal(stream.chunks[5], '\r\x1b[2K');
    bar.finish();
    assert.equal(stream.chunks.length, 6, 'finishing twice clears once');
  });

  it('fits the terminal width', () => {
    const stream = fakeStream(true, 40);
    const bar = new ProgressBar(1, { stream, now: () => 0 });
    bar.update('a very long label that would wrap a narrow terminal');
    assert.equal(bar.render().length, 39);
  });
});
