import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { CsvRecordReader } from './csv-records.js';

type Event =
  | [kind: 'record', line: number, fields: string[], raw: string]
  | [kind: 'malformed', line: number, reason: string, raw: string];

/** Reads `text` cut into pieces at `cuts` (offsets), as a stream would hand it over. */
function read(text: string, cuts: number[] = [], maxRecordChars?: number): Event[] {
  const events: Event[] = [];
  const handlers = {
    record: (fields: string[], line: number, raw: string) =>
      events.push(['record', line, fields, raw]),
    malformed: (line: number, reason: string, raw: string) =>
      events.push(['malformed', line, reason, raw]),
  };
  const reader = new CsvRecordReader(maxRecordChars);
  let from = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    reader.push(text.slice(from, cut), handlers);
    from = cut;
  }
  reader.push(text.slice(from), handlers);
  reader.end(handlers);
  return events;
}

const records = (text: string, cuts?: number[]) =>
  read(text, cuts).map((e) => (e[0] === 'record' ? [e[1], e[2]] : ['malformed', e[1], e[3]]));

/** Deterministic pseudo-random numbers, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
}

describe('CSV records', () => {
  it('reads plain lines, skips empty ones, and numbers records by the line where they end', () => {
    expect(records('a,b\n1,2\n\n3,4')).toEqual([
      [1, ['a', 'b']],
      [2, ['1', '2']],
      [4, ['3', '4']],
    ]);
    expect(records('\ufeffa,b\r\n1,2\r\n\r\n,\r\n')).toEqual([
      [1, ['a', 'b']],
      [2, ['1', '2']],
      [4, ['', '']],
    ]);
    expect(records('a,b\r1,2\r\r3,4\r')).toEqual([
      [1, ['a', 'b']],
      [2, ['1', '2']],
      [4, ['3', '4']],
    ]);
    expect(records('a,b\r\n1,2\n3,4\r5,6')).toEqual([
      [1, ['a', 'b']],
      [2, ['1', '2']],
      [3, ['3', '4']],
      [4, ['5', '6']],
    ]);
  });

  it('reads quoted fields with commas, doubled quotes and line breaks', () => {
    const events = read('phone,name\n"0412 000 001","Smith, ""Jo""\r\nline two",x\n0412,"",\n');
    expect(events).toEqual([
      ['record', 1, ['phone', 'name'], 'phone,name'],
      [
        'record',
        3,
        ['0412 000 001', 'Smith, "Jo"\r\nline two', 'x'],
        '"0412 000 001","Smith, ""Jo""\r\nline two",x',
      ],
      ['record', 4, ['0412', '', ''], '0412,"",'],
    ]);
  });

  it('reports a malformed row with its line and reads on from the next line', () => {
    expect(read('a,b\nab"c,2\n"x"y,3\n"1" ,2\n4,5\n')).toEqual([
      ['record', 1, ['a', 'b'], 'a,b'],
      [
        'malformed',
        2,
        'malformed CSV: a quote inside a field that does not start with one (quote the whole field, and double the quotes inside it)',
        'ab"c,2',
      ],
      [
        'malformed',
        3,
        'malformed CSV: a closing quote must be followed by a comma or the end of the line',
        '"x"y,3',
      ],
      [
        'malformed',
        4,
        'malformed CSV: a closing quote must be followed by a comma or the end of the line',
        '"1" ,2',
      ],
      ['record', 5, ['4', '5'], '4,5'],
    ]);
  });

  it('reports a quote never closed on its own line, and keeps the rows after it', () => {
    expect(records('a,b\n"ab,2\n3,4\n5,6\n')).toEqual([
      [1, ['a', 'b']],
      ['malformed', 2, '"ab,2'],
      [3, ['3', '4']],
      [4, ['5', '6']],
    ]);
    // Within the size bound: a quote that closes later is one record over several lines.
    expect(records('a\n"x\ny\nz"\nq\n')).toEqual([
      [1, ['a']],
      [4, ['x\ny\nz']],
      [5, ['q']],
    ]);
  });

  it('keeps memory bounded: an overlong line or quoted field is one malformed row', () => {
    const long = 'y'.repeat(500);
    const text = `a\n${long}\n"${long}\nb\nc\n`;
    const cuts = Array.from({ length: 40 }, (_, i) => i * 37);
    const events = read(text, cuts, 100);
    expect(events.map((e) => [e[0], e[1], e[3].length])).toEqual([
      ['record', 1, 1],
      ['malformed', 2, 100],
      ['malformed', 3, 100],
      ['record', 4, 1],
      ['record', 5, 1],
    ]);
  });

  it('gives the same records however the text is cut into pieces', () => {
    const text =
      '\ufeffphone,first_name\r\n0412000001,"Ann\r\nMarie"\r\n\r\n"04""12",x\r\nab"c,1\r\n0412000002,"B"""\r\n"unclosed,2\r\nlast,row';
    const whole = read(text);
    const next = random(7);
    for (let trial = 0; trial < 300; trial++) {
      const cuts = Array.from({ length: 1 + Math.floor(next() * 6) }, () =>
        Math.floor(next() * text.length),
      );
      expect(read(text, cuts), `cuts ${cuts.join(',')}`).toEqual(whole);
    }
  });

  it('agrees with csv-parse on well-formed files', () => {
    const next = random(42);
    const pick = <T>(items: T[]) => items[Math.floor(next() * items.length)]!;
    for (let trial = 0; trial < 200; trial++) {
      const eol = pick(['\n', '\r\n']);
      const rows: string[] = [];
      for (let r = 0; r < 1 + Math.floor(next() * 8); r++) {
        if (next() < 0.1) {
          rows.push('');
          continue;
        }
        const fields = Array.from({ length: 1 + Math.floor(next() * 4) }, () => {
          const value = pick([
            '',
            'plain',
            ' spaced ',
            'comma,inside',
            'quote"inside',
            'two\nlines',
            'é😀',
          ]);
          return /[",\r\n]/.test(value) || next() < 0.2 ? `"${value.replace(/"/g, '""')}"` : value;
        });
        rows.push(fields.join(','));
      }
      const text = rows.join(eol) + (next() < 0.5 ? eol : '');
      const theirs = (
        parse(text, {
          skip_empty_lines: true,
          relax_column_count: true,
          info: true,
        }) as unknown as Array<{
          record: string[];
          info: { lines: number };
        }>
      ).map((r) => [r.info.lines, r.record]);
      expect(records(text), JSON.stringify(text)).toEqual(theirs);
      const cuts = [Math.floor(next() * text.length), Math.floor(next() * text.length)];
      expect(records(text, cuts), JSON.stringify(text)).toEqual(theirs);
    }
  });
});
