import { describe, expect, it } from 'vitest';
import { NumberFilter } from './import-number-filter.js';

describe('the filter of numbers an import has stored', () => {
  it('never misses a number it was given, and rarely claims one it was not', () => {
    const filter = new NumberFilter();
    const number = (i: number) => `+614${String(i * 7).padStart(8, '0')}`;
    let wrong = 0;
    for (let i = 0; i < 200_000; i++) if (filter.add(number(i))) wrong++;
    expect(wrong).toBeLessThan(20); // in theory 1 in 3,000,000 at this size
    for (let i = 0; i < 200_000; i++) expect(filter.add(number(i))).toBe(true);
  });
});
