// The command-line flag reader of the bench scripts: `--name value`.

/** The value after `--name`, or undefined when the flag (or its value) is missing. */
export function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : undefined;
}
