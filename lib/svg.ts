// A few helpers for writing SVG as text: escaping and one element at a time. Numbers are written
// with at most two decimals so that documents stay small and diff well.

/** `text` with the five XML special characters written as character references. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** Attributes of an element; numbers are rounded to two decimals. */
export type Attrs = Record<string, string | number | undefined>;

function formatAttr(value: string | number): string {
  return typeof value === 'number' ? String(Math.round(value * 100) / 100) : escapeXml(value);
}

/** `<name attrs>children</name>`, or `<name attrs/>` without children; undefined attributes are left out. */
export function el(name: string, attrs: Attrs, children?: string | readonly string[]): string {
  const attrText = Object.entries(attrs)
    .filter((e): e is [string, string | number] => e[1] !== undefined)
    .map(([k, v]) => ` ${k}="${formatAttr(v)}"`)
    .join('');
  if (children === undefined) return `<${name}${attrText}/>`;
  const body = typeof children === 'string' ? children : children.join('\n');
  return `<${name}${attrText}>${body}</${name}>`;
}

/** A text element; the content is escaped. */
export function text(content: string, attrs: Attrs): string {
  return el('text', attrs, escapeXml(content));
}

/** A rough width of `content` in a sans-serif font of `size` px, enough to keep labels apart. */
export function estimateTextWidth(content: string, size: number): number {
  return content.length * size * 0.6;
}
