// The mask language of the `splash-attention mask` command: a few words for the built-in masks,
// combined with `and` / `or` and parentheses. Parsing is a small recursive descent over
// whitespace-separated words; every error names the spec and says what was expected and found.

import {
  CausalMask, ChunkedCausalMask, DenseMask, FullMask, LocalMask, makeRandomMask, type Mask,
} from './mask';

/** The grammar, as `splash-attention mask --help` prints it. */
export const MASK_SPEC_HELP = `mask spec grammar (words separated by spaces; quote a spec that has several words):
  spec  := term { or term }          'and' binds tighter than 'or'
  term  := atom { and atom }
  atom  := ( spec ) | full | causal[:OFFSET] | local:LEFT,RIGHT[,OFFSET] | chunked:SIZE
         | random:P[,SEED] | docs:LEN,LEN,...
  full              every (q, kv) pair
  causal[:OFFSET]   q + OFFSET >= kv (OFFSET default 0, may be negative)
  local:LEFT,RIGHT  q - LEFT <= kv <= q + RIGHT; '-' for an unbounded side (local:256,0 = 256 keys back)
  chunked:SIZE      causal inside chunks of SIZE tokens (floor(q/SIZE) == floor(kv/SIZE) and q >= kv)
  random:P[,SEED]   each pair masked out with probability P in [0, 1] (seeded, default seed 0)
  docs:LEN,...      packed documents of these lengths (they must add up to the sequence, q = kv):
                    a token sees its own document only; 'causal and docs:...' for causal documents
  examples: causal    'causal and local:512,0'    'local:128,128 or chunked:64'    'causal and docs:700,300,1048'`;

/** Largest dense mask (random:, docs:) the command builds: 64 Mi elements, 64 MiB. */
export const MAX_DENSE_ELEMENTS = 2 ** 26;

const LEAVES = 'full, causal[:OFFSET], local:LEFT,RIGHT[,OFFSET], chunked:SIZE, random:P[,SEED], docs:LEN,...';

/**
 * Builds the mask that `spec` describes for a `[q, kv]` sequence shape.
 * @throws TypeError for an unknown mask word; RangeError for a malformed spec or an out-of-range number.
 */
export function parseMaskSpec(spec: string, shape: readonly [number, number]): Mask {
  if (typeof spec !== 'string') throw new TypeError(`spec: expected a string, got ${typeof spec}`);
  const tokens = tokenize(spec);
  if (tokens.length === 0) throw new RangeError(`spec: expected a mask such as 'causal', got an empty spec`);
  const parser = new Parser(spec, tokens, [shape[0], shape[1]]);
  const mask = parser.parseOr();
  if (!parser.done()) throw parser.error(`'and', 'or' or the end of the spec`);
  return mask;
}

function tokenize(spec: string): string[] {
  return spec.replace(/[()]/g, ' $& ').split(/\s+/).filter((t) => t.length > 0);
}

class Parser {
  private at = 0;

  constructor(private readonly spec: string, private readonly tokens: string[], private readonly shape: [number, number]) {}

  done(): boolean {
    return this.at === this.tokens.length;
  }

  /** A RangeError saying what was expected where the parser stands. */
  error(expected: string): RangeError {
    const found = this.done() ? 'the end of the spec' : `'${this.tokens[this.at]}' (word ${this.at + 1})`;
    return new RangeError(`spec '${this.spec}': expected ${expected}, got ${found}`);
  }

  parseOr(): Mask {
    let mask = this.parseAnd();
    while (this.tokens[this.at] === 'or') {
      this.at++;
      mask = mask.or(this.parseAnd());
    }
    return mask;
  }

  private parseAnd(): Mask {
    let mask = this.parseAtom();
    while (this.tokens[this.at] === 'and') {
      this.at++;
      mask = mask.and(this.parseAtom());
    }
    return mask;
  }

  private parseAtom(): Mask {
    const token = this.tokens[this.at];
    if (token === undefined || token === ')' || token === 'and' || token === 'or') throw this.error(`a mask (${LEAVES}) or '('`);
    this.at++;
    if (token === '(') {
      const inner = this.parseOr();
      if (this.tokens[this.at] !== ')') throw this.error(`')' to close the '('`);
      this.at++;
      return inner;
    }
    try {
      return leaf(token, this.shape);
    } catch (e) {
      // Say where in the spec the bad word stands; keep the error class (TypeError or RangeError).
      if (e instanceof TypeError) throw new TypeError(`spec '${this.spec}', word ${this.at}: ${e.message}`);
      if (e instanceof RangeError) throw new RangeError(`spec '${this.spec}', word ${this.at}: ${e.message}`);
      throw e;
    }
  }
}

/** One mask word, e.g. `local:256,0`. */
function leaf(word: string, shape: [number, number]): Mask {
  const colon = word.indexOf(':');
  const name = colon < 0 ? word : word.slice(0, colon);
  const args = colon < 0 ? [] : word.slice(colon + 1).split(',');
  const arity = (min: number, max: number, form: string): void => {
    if (colon >= 0 && max === 0) throw new RangeError(`${word}: expected '${form}' with no arguments, got ${args.length}`);
    if (args.length < min || args.length > max) {
      throw new RangeError(`${word}: expected '${form}', got ${args.length} argument${args.length === 1 ? '' : 's'}`);
    }
  };
  switch (name) {
    case 'full':
      arity(0, 0, 'full');
      return new FullMask(shape);
    case 'causal':
      arity(colon < 0 ? 0 : 1, 1, 'causal[:OFFSET]');
      return new CausalMask(shape, args.length ? integer(args[0], `${word}: OFFSET`) : 0);
    case 'local': {
      arity(2, 3, 'local:LEFT,RIGHT[,OFFSET]');
      const side = (s: string, what: string) => (s === '-' ? null : integer(s, `${word}: ${what}`, 0));
      const offset = args.length === 3 ? integer(args[2], `${word}: OFFSET`) : 0;
      return new LocalMask(shape, [side(args[0], 'LEFT'), side(args[1], 'RIGHT')], offset);
    }
    case 'chunked':
      arity(1, 1, 'chunked:SIZE');
      return new ChunkedCausalMask(shape, integer(args[0], `${word}: SIZE`, 1));
    case 'random': {
      arity(1, 2, 'random:P[,SEED]');
      const p = Number(args[0]);
      if (args[0] === '' || !(p >= 0 && p <= 1)) throw new RangeError(`${word}: P: expected a probability in [0, 1], got '${args[0]}'`);
      checkDenseSize(word, shape);
      return makeRandomMask(shape, p, args.length === 2 ? integer(args[1], `${word}: SEED`, 0) : 0);
    }
    case 'docs':
      if (args.length === 0) throw new RangeError(`${word}: expected 'docs:LEN,LEN,...' with at least one length, got none`);
      return documentMask(word, args.map((a, i) => integer(a, `${word}: LEN ${i + 1}`, 1)), shape);
    default:
      throw new TypeError(`expected a mask (${LEAVES}), got '${word}'`);
  }
}

function integer(text: string, what: string, min = -Infinity): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isInteger(n) || n < min) {
    const range = min === -Infinity ? 'an integer' : `an integer ≥ ${min}`;
    throw new RangeError(`${what}: expected ${range}, got '${text}'`);
  }
  return n;
}

function checkDenseSize(word: string, [q, kv]: [number, number]): void {
  if (q * kv > MAX_DENSE_ELEMENTS) {
    throw new RangeError(`${word}: a dense mask of q × kv = ${q} × ${kv} elements is too large here; expected at most ${MAX_DENSE_ELEMENTS} elements`);
  }
}

/** Packed documents: a token attends to the tokens of its own document (both directions). */
function documentMask(word: string, lengths: number[], shape: [number, number]): DenseMask {
  const [q, kv] = shape;
  const total = lengths.reduce((a, b) => a + b, 0);
  if (q !== kv || total !== q) {
    throw new RangeError(`${word}: expected document lengths adding up to the sequence length with q = kv (${q} × ${kv}), got a total of ${total}`);
  }
  checkDenseSize(word, shape);
  const data = new Uint8Array(q * kv);
  let start = 0;
  for (const len of lengths) {
    for (let r = start; r < start + len; r++) data.fill(1, r * kv + start, r * kv + start + len);
    start += len;
  }
  return new DenseMask(data, [q, kv]);
}

/** The sequence length a spec implies on its own (the total of a docs: word), if any. */
export function impliedSeqLen(spec: string): number | undefined {
  for (const token of tokenize(spec)) {
    if (!token.startsWith('docs:')) continue;
    const lengths = token.slice(5).split(',').map(Number);
    if (lengths.every((n) => Number.isInteger(n) && n > 0)) return lengths.reduce((a, b) => a + b, 0);
  }
  return undefined;
}
