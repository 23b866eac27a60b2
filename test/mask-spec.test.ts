// The mask spec language of `splash-attention mask`: every word against the mask it names (element
// by element), precedence and parentheses, and the errors bad specs give.

import assert from 'node:assert/strict';
import {
  CausalMask, ChunkedCausalMask, FullMask, LocalMask, makeRandomMask, type Mask,
} from '../lib/index';
import { impliedSeqLen, parseMaskSpec } from '../lib/mask-spec';

const SHAPE: [number, number] = [64, 80];

function sameMask(spec: string, expected: Mask | Uint8Array, shape: [number, number] = SHAPE): void {
  const got = parseMaskSpec(spec, shape).toDense();
  assert.deepEqual(got, expected instanceof Uint8Array ? expected : expected.toDense(), spec);
}

/** Packed documents drawn from first principles: (q, kv) allowed when both fall in one document. */
function documents(lengths: number[]): Uint8Array {
  const n = lengths.reduce((a, b) => a + b, 0);
  const doc = new Int32Array(n);
  let at = 0;
  lengths.forEach((len, d) => doc.fill(d, at, (at += len)));
  const out = new Uint8Array(n * n);
  for (let q = 0; q < n; q++) for (let kv = 0; kv < n; kv++) out[q * n + kv] = doc[q] === doc[kv] ? 1 : 0;
  return out;
}

describe('mask specs: each word', () => {
  it('full, causal and causal:OFFSET', () => {
    sameMask('full', new FullMask(SHAPE));
    sameMask('causal', new CausalMask(SHAPE));
    sameMask('causal:16', new CausalMask(SHAPE, 16));
    sameMask('causal:-7', new CausalMask(SHAPE, -7));
  });

  it('local:LEFT,RIGHT with bounded, unbounded and offset windows', () => {
    sameMask('local:8,0', new LocalMask(SHAPE, [8, 0]));
    sameMask('local:3,5', new LocalMask(SHAPE, [3, 5]));
    sameMask('local:-,2', new LocalMask(SHAPE, [null, 2]));
    sameMask('local:4,-', new LocalMask(SHAPE, [4, null]));
    sameMask('local:4,1,10', new LocalMask(SHAPE, [4, 1], 10));
  });

  it('chunked:SIZE', () => {
    sameMask('chunked:16', new ChunkedCausalMask(SHAPE, 16));
    sameMask('chunked:1000', new ChunkedCausalMask(SHAPE, 1000));
  });

  it('random:P[,SEED] is makeRandomMask with P as its sparsity', () => {
    sameMask('random:0.3', makeRandomMask(SHAPE, 0.3, 0));
    sameMask('random:0.75,42', makeRandomMask(SHAPE, 0.75, 42));
    sameMask('random:0', makeRandomMask(SHAPE, 0, 0)); // both ends of [0, 1] are probabilities
    sameMask('random:1,5', makeRandomMask(SHAPE, 1, 5));
    const density = parseMaskSpec('random:0.75,42', SHAPE).toDense().reduce((a, b) => a + b, 0) / (64 * 80);
    assert.ok(Math.abs(density - 0.25) < 0.05, `density ${density}`); // 5120 draws: ±0.05 is > 8 sigma
  });

  it('docs:LEN,... gives each packed document its own square, and its total sets the sequence length', () => {
    sameMask('docs:10,30,24', documents([10, 30, 24]), [64, 64]);
    sameMask('docs:64', documents([64]), [64, 64]);
    assert.equal(impliedSeqLen('causal and docs:700,300,1048'), 2048);
    assert.equal(impliedSeqLen('causal'), undefined);
    // A docs: word that is not a valid list of lengths implies nothing (the parser reports it); a later one counts.
    assert.equal(impliedSeqLen('docs:3,0'), undefined);
    assert.equal(impliedSeqLen('docs:3,x'), undefined);
    assert.equal(impliedSeqLen('(docs:3,x) or docs:4,4'), 8);
  });
});

describe('mask specs: combinations', () => {
  const causal = new CausalMask(SHAPE);
  const local = new LocalMask(SHAPE, [5, 5]);
  const chunked = new ChunkedCausalMask(SHAPE, 16);

  it('and / or, with and binding tighter', () => {
    sameMask('causal and local:5,5', causal.and(local));
    sameMask('local:5,5 or chunked:16', local.or(chunked));
    sameMask('chunked:16 or causal and local:5,5', chunked.or(causal.and(local)));
    sameMask('causal and local:5,5 or chunked:16', causal.and(local).or(chunked));
  });

  it('parentheses, also without spaces around them', () => {
    sameMask('(chunked:16 or causal) and local:5,5', chunked.or(causal).and(local));
    sameMask('((chunked:16 or causal)) and (local:5,5)', chunked.or(causal).and(local));
    sameMask('(chunked:16 or causal)and(local:5,5)', chunked.or(causal).and(local));
    const docs = documents([20, 44]);
    sameMask('causal and docs:20,44', new CausalMask([64, 64]).toDense().map((v, i) => v & docs[i]), [64, 64]);
  });

  it('computable combinations stay computable (no dense matrix)', () => {
    assert.notEqual(parseMaskSpec('causal and local:5,5 or chunked:16', SHAPE).program(), null);
    assert.equal(parseMaskSpec('causal and random:0.5', SHAPE).program(), null);
  });
});

describe('mask specs: errors', () => {
  const cases: [string, ErrorConstructor, RegExp][] = [
    ['', RangeError, /^spec: expected a mask such as 'causal', got an empty spec$/],
    ['caual', TypeError, /^spec 'caual', word 1: expected a mask \(full, causal\[:OFFSET\], .*\), got 'caual'$/],
    ['causal and', RangeError, /^spec 'causal and': expected a mask .* or '\(', got the end of the spec$/],
    ['or causal', RangeError, /^spec 'or causal': expected a mask .* got 'or' \(word 1\)$/],
    ['causal full', RangeError, /^spec 'causal full': expected 'and', 'or' or the end of the spec, got 'full' \(word 2\)$/],
    ['(causal', RangeError, /^spec '\(causal': expected '\)' to close the '\(', got the end of the spec$/],
    ['causal)', RangeError, /^spec 'causal\)': expected 'and', 'or' or the end of the spec, got '\)' \(word 2\)$/],
    ['full:1', RangeError, /^spec 'full:1', word 1: full:1: expected 'full' with no arguments, got 1$/],
    ['causal:1.5', RangeError, /causal:1\.5: OFFSET: expected an integer, got '1\.5'$/],
    ['local:8', RangeError, /local:8: expected 'local:LEFT,RIGHT\[,OFFSET\]', got 1 argument$/],
    ['local:x,0', RangeError, /local:x,0: LEFT: expected an integer ≥ 0, got 'x'$/],
    ['local:4,-2', RangeError, /local:4,-2: RIGHT: expected an integer ≥ 0, got '-2'$/],
    ['chunked:0', RangeError, /chunked:0: SIZE: expected an integer ≥ 1, got '0'$/],
    ['random:1.5', RangeError, /random:1\.5: P: expected a probability in \[0, 1\], got '1\.5'$/],
    ['random:', RangeError, /random:: P: expected a probability in \[0, 1\], got ''$/],
    ['docs:', RangeError, /docs:: LEN 1: expected an integer ≥ 1, got ''$/],
    ['docs:10,20', RangeError, /docs:10,20: expected document lengths adding up to the sequence length with q = kv \(64 × 80\), got a total of 30$/],
    ['docs:64', RangeError, /docs:64: expected document lengths adding up to the sequence length with q = kv \(64 × 80\), got a total of 64$/],
    ['docs', RangeError, /^spec 'docs', word 1: docs: expected 'docs:LEN,LEN,...' with at least one length, got none$/],
    ['causal:', RangeError, /causal:: OFFSET: expected an integer, got ''$/],
    ['chunked:4,5', RangeError, /chunked:4,5: expected 'chunked:SIZE', got 2 arguments$/],
    ['random:-0.5', RangeError, /random:-0\.5: P: expected a probability in \[0, 1\], got '-0\.5'$/],
    ['causal and )', RangeError, /^spec 'causal and \)': expected a mask .* or '\(', got '\)' \(word 3\)$/],
    ['causal or and full', RangeError, /^spec 'causal or and full': expected a mask .* or '\(', got 'and' \(word 3\)$/],
  ];
  for (const [spec, cls, message] of cases) {
    it(`'${spec}' → ${cls.name}`, () => {
      assert.throws(() => parseMaskSpec(spec, SHAPE), (e: unknown) => e instanceof cls && message.test((e as Error).message),
        `expected ${cls.name} matching ${message}`);
    });
  }

  it('a spec that is not a string → TypeError', () => {
    assert.throws(() => parseMaskSpec(5 as never, SHAPE), (e: unknown) => e instanceof TypeError && /^spec: expected a string, got number$/.test((e as Error).message));
  });

  it('docs: lengths that do not add up to q are refused also when q = kv', () => {
    assert.throws(() => parseMaskSpec('docs:10,20', [64, 64]), /docs:10,20: expected document lengths adding up .* \(64 × 64\), got a total of 30$/);
  });

  it('refuses dense masks too large to build here', () => {
    assert.throws(() => parseMaskSpec('random:0.5', [16384, 8192]), /expected at most 67108864 elements/);
  });
});
