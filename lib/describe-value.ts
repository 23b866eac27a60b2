// How an argument error names the value it got: every message in the package says
// "<argument>: expected <what>, got <describeValue(x)>", so all of them describe values alike.

/** Short description of a value for error messages: its class, its array length, or its type and value.
 *  @internal */
export function describeValue(x: unknown): string {
  if (x === null) return 'null';
  if (x === undefined) return 'undefined';
  if (Array.isArray(x)) return `Array(${x.length})`;
  if (ArrayBuffer.isView(x)) return x.constructor.name;
  if (typeof x === 'object') return (x as object).constructor?.name ?? 'object';
  if (typeof x === 'string') return `string '${x}'`;
  return `${typeof x} ${String(x)}`;
}
