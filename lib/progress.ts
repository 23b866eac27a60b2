// A one-line progress bar for the benchmarks, drawn on stderr and only for a person watching a
// terminal: never when stderr is not a TTY, in CI, or when the output is meant for a program
// (--json). Table lines printed while the bar is up go through log(), which lifts the bar, prints
// the line on stdout and draws the bar again, so the two never tear each other.

/** The part of a write stream the bar uses (process.stderr, or a stand-in in tests). */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(chunk: string): boolean;
}

export interface ProgressOptions {
  /** Where the bar is drawn; default process.stderr. */
  stream?: ProgressStream;
  /** Force the bar on or off; default: shouldShowProgress(stream). */
  enabled?: boolean;
  /** Where log() prints table lines; default console.log. */
  print?: (line: string) => void;
  /** Clock in milliseconds; tests pass their own. */
  now?: () => number;
}

/** A bar only helps a person at a terminal: not in CI logs, not in output meant for programs. */
export function shouldShowProgress(stream: ProgressStream, env: NodeJS.ProcessEnv = process.env, json = false): boolean {
  return stream.isTTY === true && !json && !env.CI;
}

const BAR_WIDTH = 24;
const CLEAR_LINE = '\r\x1b[2K';

export class ProgressBar {
  readonly enabled: boolean;
  private readonly stream: ProgressStream;
  private readonly print: (line: string) => void;
  private readonly now: () => number;
  private readonly started: number;
  private done = 0;
  private label = '';
  private drawn = false;

  /** `total` is the work of the whole run in any unit (cases, or estimated seconds); advance() counts it down. */
  constructor(private readonly total: number, opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.enabled = opts.enabled ?? shouldShowProgress(this.stream);
    this.print = opts.print ?? ((line) => console.log(line));
    this.now = opts.now ?? (() => performance.now());
    this.started = this.now();
  }

  /** Names the case that is running now. */
  update(label: string): void {
    this.label = label;
    this.draw();
  }

  /** Marks `amount` of the total as done. */
  advance(amount = 1): void {
    this.done = Math.min(this.total, this.done + amount);
    this.draw();
  }

  /** Prints a line on stdout without leaving a torn bar behind. */
  log(line: string): void {
    this.clear();
    this.print(line);
    this.draw();
  }

  /** Removes the bar for good. */
  finish(): void {
    this.clear();
  }

  /** The bar's text, e.g. `[█████·······] 42 %  fwd causal S=1024  12 s, about 17 s left`. */
  render(): string {
    const fraction = this.total > 0 ? this.done / this.total : 1;
    const filled = Math.round(fraction * BAR_WIDTH);
    const elapsed = (this.now() - this.started) / 1000;
    const left = fraction > 0 && fraction < 1 ? `, about ${Math.ceil((elapsed * (1 - fraction)) / fraction)} s left` : '';
    const line = `[${'█'.repeat(filled)}${'·'.repeat(BAR_WIDTH - filled)}] ${Math.floor(100 * fraction)} %  ${this.label}  ${elapsed.toFixed(0)} s${left}`;
    const width = Math.max(20, (this.stream.columns || 80) - 1); // a pty may report 0 columns
    return line.length > width ? line.slice(0, width) : line;
  }

  private draw(): void {
    if (!this.enabled) return;
    this.stream.write(`${CLEAR_LINE}${this.render()}`);
    this.drawn = true;
  }

  private clear(): void {
    if (!this.enabled || !this.drawn) return;
    this.stream.write(CLEAR_LINE);
    this.drawn = false;
  }
}
