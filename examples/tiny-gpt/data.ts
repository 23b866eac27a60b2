// The training text, made here: short "stories" from a tiny grammar, packed several per sequence
// with segment ids. Each story names its hero in the title and every sentence starts with that name,
// so predicting it needs attention to the title of the same story and not of its neighbours.

/** A small seeded generator (xorshift32), so that every run sees the same text. */
export function makeRng(seed: number): () => number {
  let s = (seed >>> 0) || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

const NAMES = ['ada', 'bob', 'cleo', 'dan', 'eve', 'finn', 'gus', 'hana'];
const VERBS = ['sees', 'likes', 'finds', 'takes', 'paints', 'hides', 'sells', 'wants'];
const ADJECTIVES = ['red', 'big', 'small', 'old', 'green', 'shiny', 'odd', 'warm'];
const NOUNS = ['cat', 'dog', 'box', 'hat', 'cup', 'kite', 'lamp', 'boat'];
const ENDINGS = ['today', 'again', 'at noon', 'by the sea', 'in the park'];
const ENDING_P = 0.4; // chance that a sentence gets an ending
const SENTENCE_COUNTS = [2, 3, 4]; // sentences per story, uniform

/** End of a story; also what a packed sequence holds between two stories. */
export const END = '\n';

const pick = <T>(rng: () => number, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];

/** One story: "story of NAME: NAME VERB the ADJ NOUN[ ENDING]. ..." (2 to 4 sentences), then END. */
export function story(rng: () => number): string {
  const hero = pick(rng, NAMES);
  const sentences: string[] = [];
  const count = pick(rng, SENTENCE_COUNTS);
  for (let i = 0; i < count; i++) {
    const ending = rng() < ENDING_P ? ` ${pick(rng, ENDINGS)}` : '';
    sentences.push(`${hero} ${pick(rng, VERBS)} the ${pick(rng, ADJECTIVES)} ${pick(rng, NOUNS)}${ending}.`);
  }
  return `story of ${hero}: ${sentences.join(' ')}${END}`;
}

/** Characters of the grammar, in a fixed order; token id = index. */
export const VOCAB: readonly string[] = [
  ...new Set([...[...NAMES, ...VERBS, ...ADJECTIVES, ...NOUNS, ...ENDINGS, 'story of the'].join(' '), ':', '.', ' ', END]),
].sort();

const ID = new Map(VOCAB.map((c, i) => [c, i]));

export function encode(text: string): number[] {
  return [...text].map((c) => {
    const id = ID.get(c);
    if (id === undefined) throw new RangeError(`text: character ${JSON.stringify(c)} is not in the vocabulary`);
    return id;
  });
}

export function decode(ids: Iterable<number>): string {
  return [...ids].map((i) => VOCAB[i]).join('');
}

export interface Batch {
  /** Input tokens [batch, seqLen], row-major. */
  tokens: Int32Array;
  /** The next token at every input position [batch, seqLen]. */
  targets: Int32Array;
  /** Story number of every input position, counting from 1 in each row; stories never see each other. */
  segmentIds: Int32Array;
  batch: number;
  seqLen: number;
}

/**
 * Fills each row with whole stories until it holds seqLen + 1 characters (the last story is cut),
 * so several stories share a row and segment ids keep them apart.
 */
export function makeBatch(rng: () => number, batch: number, seqLen: number): Batch {
  const tokens = new Int32Array(batch * seqLen);
  const targets = new Int32Array(batch * seqLen);
  const segmentIds = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    const ids: number[] = [];
    const seg: number[] = [];
    for (let doc = 1; ids.length < seqLen + 1; doc++) {
      const s = encode(story(rng));
      ids.push(...s);
      seg.push(...s.map(() => doc));
    }
    for (let i = 0; i < seqLen; i++) {
      tokens[b * seqLen + i] = ids[i];
      targets[b * seqLen + i] = ids[i + 1];
      segmentIds[b * seqLen + i] = seg[i];
    }
  }
  return { tokens, targets, segmentIds, batch, seqLen };
}

const mean = (xs: readonly number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
const meanLength = (words: readonly string[]): number => mean(words.map((w) => w.length));

/** Information (nats) and expected length (characters) of one story, from the grammar's uniform choices. */
export function storyStats(): { nats: number; chars: number } {
  const endingP = ENDING_P;
  const sentences = mean(SENTENCE_COUNTS);
  const endingNats = -((1 - endingP) * Math.log(1 - endingP) + endingP * Math.log(endingP / ENDINGS.length));
  const nats = Math.log(NAMES.length) + Math.log(SENTENCE_COUNTS.length) +
    sentences * (Math.log(VERBS.length) + Math.log(ADJECTIVES.length) + Math.log(NOUNS.length) + endingNats);
  const sentenceChars = 1 + meanLength(VERBS) + ' the '.length + meanLength(ADJECTIVES) + 1 + meanLength(NOUNS) +
    endingP * (1 + meanLength(ENDINGS)) + '.'.length; // plus the hero's name, counted below
  const chars = 'story of '.length + ': '.length + (1 + sentences) * meanLength(NAMES) + sentences * sentenceChars +
    (sentences - 1) + END.length;
  return { nats, chars };
}

/** The text's entropy rate in nats per character: no model can average a lower loss on it. */
export function entropyPerChar(): number {
  const { nats, chars } = storyStats();
  return nats / chars;
}

export interface StoryCheck {
  /** The whole story follows the grammar (title, 2 to 4 sentences). */
  grammatical: boolean;
  /** Sentences after the title, split after each '.'. */
  sentences: number;
  /** Sentences that follow the grammar on their own. */
  wellFormed: number;
  /** Well-formed sentences whose subject is the hero named in the title. */
  heroKept: number;
}

const alt = (xs: readonly string[]): string => `(?:${xs.join('|')})`;
const TITLE = new RegExp(`^story of (${alt(NAMES)}): `);
const SENTENCE = new RegExp(`^(${alt(NAMES)}) ${alt(VERBS)} the ${alt(ADJECTIVES)} ${alt(NOUNS)}(?: ${alt(ENDINGS)})?\\.$`);

/** How much of a sampled story (without its END) follows the grammar, sentence by sentence. */
export function checkStory(text: string): StoryCheck {
  const title = TITLE.exec(text);
  const body = title ? text.slice(title[0].length) : text;
  const parts = body.split(/(?<=\.) /).filter((p) => p.length > 0);
  const subjects = parts.map((p) => SENTENCE.exec(p)?.[1]);
  const wellFormed = subjects.filter((s) => s !== undefined).length;
  return {
    grammatical: title !== null && wellFormed === parts.length && parts.length >= 2 && parts.length <= 4,
    sentences: parts.length,
    wellFormed,
    heroKept: title ? subjects.filter((s) => s === title[1]).length : 0,
  };
}
