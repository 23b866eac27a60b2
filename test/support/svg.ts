// Parses an SVG document with a real XML parser (any warning or error fails) and offers the few
// queries the picture tests need. Every SVG the package writes goes through checkSvg.

import assert from 'node:assert/strict';
import { DOMParser, onWarningStopParsing, type Document, type Element } from '@xmldom/xmldom';

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Parses `text` strictly and checks what every picture must have: an <svg> root in the SVG
 *  namespace with positive width and height, a matching viewBox, and finite numeric geometry. */
export function checkSvg(text: string): Document {
  // xmldom tolerates a bare '&' in text; XML does not.
  const bare = /&(?!(#\d+|#x[0-9a-fA-F]+|amp|lt|gt|quot|apos);)/.exec(text);
  assert.equal(bare, null, `bare '&' at ${bare?.index}: ${text.slice(bare?.index ?? 0, (bare?.index ?? 0) + 30)}`);
  const doc = new DOMParser({ onError: onWarningStopParsing }).parseFromString(text, 'image/svg+xml');
  const root = doc.documentElement;
  assert.ok(root, 'no root element');
  assert.equal(root.localName, 'svg');
  assert.equal(root.namespaceURI, SVG_NS);
  const width = Number(root.getAttribute('width'));
  const height = Number(root.getAttribute('height'));
  assert.ok(width > 0 && height > 0, `width ${root.getAttribute('width')}, height ${root.getAttribute('height')}`);
  const viewBox = (root.getAttribute('viewBox') ?? '').split(/[\s,]+/).map(Number);
  assert.deepEqual(viewBox, [0, 0, width, height], 'viewBox');
  for (const el of allElements(root)) {
    for (const name of ['x', 'y', 'width', 'height', 'x1', 'x2', 'y1', 'y2']) {
      const v = el.getAttribute(name);
      if (v === null || v === '' || v.endsWith('%')) continue;
      assert.ok(Number.isFinite(Number(v)), `<${el.localName}> ${name}="${v}"`);
    }
  }
  return doc;
}

export function allElements(root: Element): Element[] {
  const out: Element[] = [];
  const walk = (el: Element) => {
    out.push(el);
    for (let c = el.firstChild; c !== null; c = c.nextSibling) if (c.nodeType === 1) walk(c as Element);
  };
  walk(root);
  return out;
}

/** Elements whose class attribute holds every one of `classes`. */
export function byClass(doc: Document, ...classes: string[]): Element[] {
  return allElements(doc.documentElement as Element).filter((el) => {
    const have = (el.getAttribute('class') ?? '').split(/\s+/);
    return classes.every((c) => have.includes(c));
  });
}

/** The text content of every <text> element under `el`, in document order. */
export function texts(el: Element): string[] {
  return allElements(el).filter((e) => e.localName === 'text').map((e) => e.textContent ?? '');
}

export function num(el: Element, name: string): number {
  const v = el.getAttribute(name);
  assert.ok(v !== null, `<${el.localName}> has no ${name}`);
  return Number(v);
}
