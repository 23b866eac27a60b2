// Mask programs: the postfix form of a computable mask (Int32Array of opcodes and arguments) that
// masks compile to, MaskInfo carries per schedule, and kernels evaluate on partial blocks only.
// native/include/splash/params.h declares the same opcodes for the native kernels.

/** Opcodes of the postfix mask program. Each instruction is [op, ...args] in an Int32Array.
 *  @internal */
export enum MaskOp {
  /** push true. args: none */
  FULL = 1,
  /** push (q + offset >= kv). args: offset */
  CAUSAL = 2,
  /** push local window test. args: hasLeft(0/1), left, hasRight(0/1), right, offset */
  LOCAL = 3,
  /** push (floor(q/c) == floor(kv/c) && q >= kv). args: chunk */
  CHUNKED = 4,
  /** pop b, pop a, push a && b. args: none */
  AND = 5,
  /** pop b, pop a, push a || b. args: none */
  OR = 6,
}

/** Evaluation stack, reused across calls; grown when a program is longer than it (a program of n
 *  words never needs more than n entries). */
let evalStack = new Uint8Array(64);

/** Evaluates the postfix program program[start, end) at one (q, kv) position. */
export function evalMaskProgram(program: Int32Array, start: number, end: number, q: number, kv: number): boolean {
  if (end - start > evalStack.length) evalStack = new Uint8Array(2 * (end - start));
  const stack = evalStack;
  let sp = 0;
  let pc = start;
  while (pc < end) {
    switch (program[pc]) {
      case MaskOp.FULL:
        stack[sp++] = 1;
        pc += 1;
        break;
      case MaskOp.CAUSAL:
        stack[sp++] = q + program[pc + 1] >= kv ? 1 : 0;
        pc += 2;
        break;
      case MaskOp.LOCAL: {
        const shifted = q + program[pc + 5];
        const leftOk = program[pc + 1] === 0 || shifted - program[pc + 2] <= kv;
        const rightOk = program[pc + 3] === 0 || shifted + program[pc + 4] >= kv;
        stack[sp++] = leftOk && rightOk ? 1 : 0;
        pc += 6;
        break;
      }
      case MaskOp.CHUNKED: {
        const chunk = program[pc + 1];
        stack[sp++] = q - (q % chunk) === kv - (kv % chunk) && q >= kv ? 1 : 0;
        pc += 2;
        break;
      }
      case MaskOp.AND:
        sp--;
        stack[sp - 1] &= stack[sp];
        pc += 1;
        break;
      case MaskOp.OR:
        sp--;
        stack[sp - 1] |= stack[sp];
        pc += 1;
        break;
      default:
        throw new RangeError(`program[${pc}]: expected a MaskOp opcode, got ${program[pc]}`);
    }
  }
  if (sp !== 1) throw new RangeError(`program: expected a program leaving 1 value on the stack, got ${sp}`);
  return stack[0] === 1;
}

/**
 * Writes the block [q0, q1) × [kv0, kv1) of the mask program program[start, end) into out as 0/1,
 * row r at outOffset + r * outStride (default: densely packed). Used by kernels on partial blocks.
 */
export function fillBlockFromProgram(
  program: Int32Array, start: number, end: number,
  q0: number, q1: number, kv0: number, kv1: number,
  out: Uint8Array, outOffset = 0, outStride = kv1 - kv0,
): void {
  for (let q = q0; q < q1; q++) {
    const row = outOffset + (q - q0) * outStride;
    for (let kv = kv0; kv < kv1; kv++) out[row + kv - kv0] = evalMaskProgram(program, start, end, q, kv) ? 1 : 0;
  }
}
