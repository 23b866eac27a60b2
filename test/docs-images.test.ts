// The pictures the README embeds: each one it names exists, is a well-formed SVG and is the kind of
// picture its caption promises (block maps with their legend, the plot with its series).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { byClass, checkSvg } from './support/svg';

const root = path.join(__dirname, '..');

describe('README pictures', () => {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const images = [...readme.matchAll(/!\[[^\]]*\]\(([^)]+\.svg)\)/g)].map((m) => m[1]);

  it('names three mask pictures and one benchmark plot', () => {
    assert.deepEqual(images.filter((f) => /mask-/.test(f)).length, 3, images.join(', '));
    assert.deepEqual(images.filter((f) => /bench-/.test(f)).length, 1, images.join(', '));
  });

  for (const file of images) {
    it(`${file} is a well-formed SVG of the promised kind`, () => {
      const doc = checkSvg(readFileSync(path.join(root, file), 'utf8'));
      if (/mask-/.test(file)) {
        assert.ok(byClass(doc, 'block').length > 0, 'no block squares');
        assert.ok(byClass(doc, 'legend-item').length >= 3, 'no legend');
      } else {
        assert.ok(byClass(doc, 'mark-line').length > 0, 'no plotted lines');
        assert.ok(byClass(doc, 'role-legend-label').length > 0, 'no legend');
      }
    });
  }
});
