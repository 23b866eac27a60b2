import assert from 'node:assert/strict';
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
} from '../lib/tensor';
import { fromFloat32, tensor, toFloat32 } from '../lib/tensor';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function fromBits(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0];
}
function toBits(x: number): number {
  f32[0] = x;
  return u32[0];
}
/** Adjacent float32 values, stepping the bit pattern (valid for finite non-zero x). */
function nextUp(x: number): number {
  return fromBits(x > 0 ? toBits(x) + 1 : toBits(x) - 1);
}
function nextDown(x: number): number {
  return fromBits(x > 0 ? toBits(x) - 1 : toBits(x) + 1);
}

/** Independent decoders: build the float32 bit pattern directly. */
function bf16Oracle(h: number): number {
  return fromBits(h << 16);
}
function f16Oracle(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * Math.pow(2, -24);
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  return fromBits(((h & 0x8000) << 16) | ((e - 15 + 127) << 23) | (m << 13));
}

const formats = [
  { name: 'bfloat16', encode: float32ToBfloat16Bits, decode: bfloat16BitsToFloat32, oracle: bf16Oracle, expMask: 0x7f80, mantMask: 0x007f },
  { name: 'float16', encode: float32ToFloat16Bits, decode: float16BitsToFloat32, oracle: f16Oracle, expMask: 0x7c00, mantMask: 0x03ff },
] as const;

describe('tensor: bf16/f16 conversion, exhaustive over all 65536 bit patterns', () => {
  for (const fmt of formats) {
    const isNaNBits = (h: number) => (h & fmt.expMask) === fmt.expMask && (h & fmt.mantMask) !== 0;

    it(`${fmt.name}: decode is exact and encode(decode(h)) == h; NaN stays NaN with its sign`, () => {
      for (let h = 0; h < 65536; h++) {
        const x = fmt.decode(h);
        if (isNaNBits(h)) {
          assert.ok(Number.isNaN(x), `decode(${h.toString(16)}) should be NaN`);
          const back = fmt.encode(x);
          assert.ok(isNaNBits(back), `encode(NaN from ${h.toString(16)}) = ${back.toString(16)} is not NaN`);
          assert.equal(back & 0x8000, h & 0x8000, `NaN sign lost for ${h.toString(16)}`);
          continue;
        }
        assert.ok(Object.is(x, fmt.oracle(h)), `decode(${h.toString(16)}) = ${x}, expected ${fmt.oracle(h)}`);
        assert.equal(fmt.encode(x), h, `round trip of ${h.toString(16)} (${x})`);
      }
    });

    it(`${fmt.name}: every midpoint rounds to even, and its float32 neighbours round to the nearer value`, () => {
      let checked = 0;
      for (let h = 0; h < 65536; h++) {
        if ((h & 0x7fff) >= fmt.expMask) continue; // Inf / NaN
        const next = h + 1; // same sign, next magnitude (the step into Inf is tested below)
        if ((next & 0x7fff) >= fmt.expMask) continue;
        const a = fmt.decode(h);
        const b = fmt.decode(next);
        const mid = (a + b) / 2; // exact in float32: one bit more than the 16-bit format's significand
        assert.equal(Math.fround(mid), mid);
        const even = (h & 1) === 0 ? h : next;
        assert.equal(fmt.encode(mid), even, `midpoint of ${h.toString(16)} and ${next.toString(16)}`);
        if (mid !== 0) {
          const below = Math.abs(nextDown(mid)) < Math.abs(mid) ? nextDown(mid) : nextUp(mid);
          const above = Math.abs(nextDown(mid)) < Math.abs(mid) ? nextUp(mid) : nextDown(mid);
          assert.equal(fmt.encode(below), h, `just inside ${h.toString(16)}`);
          assert.equal(fmt.encode(above), next, `just inside ${next.toString(16)}`);
        }
        checked++;
      }
      assert.ok(checked > 60000);
    });
  }

  it('float16 overflow rounds to Inf only past the largest finite half-way point', () => {
    assert.equal(float32ToFloat16Bits(65504), 0x7bff);
    assert.equal(float32ToFloat16Bits(65519.99), 0x7bff);
    assert.equal(float32ToFloat16Bits(65520), 0x7c00); // the tie goes to even, which is Inf
    assert.equal(float32ToFloat16Bits(-1e9), 0xfc00);
    assert.equal(float32ToFloat16Bits(2 ** -25), 0x0000); // exactly half the smallest subnormal: ties to even (0)
    assert.equal(float32ToFloat16Bits(2 ** -25 * 1.0001), 0x0001);
    assert.equal(float32ToBfloat16Bits(3.4028234663852886e38), 0x7f80); // float32 max rounds up into Inf
  });
});

describe('tensor()', () => {
  it('accepts matching data and shape, and defaults number[] to float32', () => {
    const t = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    assert.equal(t.dtype, 'float32');
    assert.deepEqual([...t.data], [1, 2, 3, 4, 5, 6]);
    const b = tensor([1.5, -2], [2], 'bfloat16');
    assert.ok(b.data instanceof Uint16Array);
    assert.deepEqual([...toFloat32(b)], [1.5, -2]);
  });
  it('rejects a length that does not match the shape (RangeError naming data)', () => {
    assert.throws(() => tensor(new Float32Array(5), [2, 3]), (e: Error) => e instanceof RangeError && /data/.test(e.message) && /6/.test(e.message) && /5/.test(e.message));
  });
  it('rejects an array type that does not fit the dtype (TypeError)', () => {
    assert.throws(() => tensor(new Float32Array(4), [4], 'bfloat16'), TypeError);
    assert.throws(() => tensor(new Uint16Array(4), [4], 'float32'), TypeError);
    assert.throws(() => tensor(new Float64Array(4) as unknown as Float32Array, [4]), /Float64Array/);
    assert.throws(() => tensor(new Float32Array(4), [4], 'float64' as never), TypeError);
  });
  it('rejects bad shapes', () => {
    assert.throws(() => tensor(new Float32Array(4), [2, 2.5]), RangeError);
    assert.throws(() => tensor(new Float32Array(4), 'x' as never), TypeError);
  });
  it('fromFloat32 copies and never aliases the input; toFloat32 returns a fresh array', () => {
    const src = new Float32Array([1, 2, 3]);
    const t = fromFloat32(src, [3], 'float32');
    src[0] = 99;
    assert.equal(t.data[0], 1);
    const back = toFloat32(t);
    back[1] = 42;
    assert.equal(t.data[1], 2);
  });
});
