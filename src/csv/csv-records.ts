/**
 * A streaming CSV reader (RFC 4180) for recipient lists, built for speed on the common case: a
 * line with no quote in it is one record, split on commas by the engine's own `split`. Records
 * with quotes go through a careful field-by-field path.
 *
 * - Records end at `\n`, `\r\n` or a lone `\r` (outside quotes), mixed freely. Lines are counted
 *   the same way, inside quoted fields too, so a record's `line` is the file's line where it ends.
 * - Empty lines are skipped (and counted). A leading byte order mark is dropped.
 * - A field that starts with `"` is quoted: it may hold commas, quotes (doubled) and line breaks.
 *   A quote anywhere else in a field, or anything but a comma or the end of the line after a
 *   closing quote, makes that record malformed: it is reported and reading resumes at the next
 *   line, so one stray quote costs one row, not the rest of the file.
 * - A quote never closed (by the end of the file, or within `maxRecordChars`) makes the line where
 *   it opened malformed, and reading resumes on the line after it; a line longer than
 *   `maxRecordChars` is malformed too. Memory therefore stays bounded whatever the input.
 */
export interface CsvHandlers {
  /** A record: its fields, the line where it ends (1-based) and its text without the line break. */
  record(fields: string[], line: number, raw: string): void;
  /** A record that is not valid CSV: its line, why, and its text as written. */
  malformed(line: number, reason: string, raw: string): void;
}

const QUOTE = 34; // "
const COMMA = 44;
const LF = 10;
const CR = 13;
/** Returned by the record readers when the record goes on past the text read so far. */
const MORE = -1;

export class CsvRecordReader {
  /** Text of a record not yet complete, carried to the next push. */
  private pending = '';
  /** Line breaks read before `pending` begins. */
  private line = 0;
  private started = false;
  /** Dropping the rest of an overlong line (already reported), up to its line break. */
  private skipping = false;

  constructor(private readonly maxRecordChars = 100_000) {}

  /** Reads the complete records in `text` (the next piece of the file); keeps the rest. */
  push(text: string, handlers: CsvHandlers): void {
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    this.read(this.pending.length > 0 ? this.pending + text : text, false, handlers);
  }

  /** The end of the file: reads what is left. */
  end(handlers: CsvHandlers): void {
    this.started = true;
    this.read(this.pending, true, handlers);
  }

  private read(text: string, final: boolean, handlers: CsvHandlers): void {
    const length = text.length;
    let i = 0;
    if (this.skipping) {
      const { end, next } = lineEnd(text, 0);
      if ((end === length || (end + 1 === length && text.charCodeAt(end) === CR)) && !final) {
        this.pending = text.slice(end); // nothing, or a \r whose \n may come next
        return;
      }
      this.skipping = false;
      i = next;
    }
    // Next positions of a quote and of each line break at or after i (-1: none in the text).
    let nextQuote = text.indexOf('"', i);
    let nextLf = text.indexOf('\n', i);
    let nextCr = text.indexOf('\r', i);
    while (i < length) {
      if (nextLf !== -1 && nextLf < i) nextLf = text.indexOf('\n', i);
      if (nextCr !== -1 && nextCr < i) nextCr = text.indexOf('\r', i);
      if (nextQuote !== -1 && nextQuote < i) nextQuote = text.indexOf('"', i);
      const eol = nextLf === -1 ? nextCr : nextCr === -1 ? nextLf : Math.min(nextLf, nextCr);
      let next: number;
      if (nextQuote === -1 || (eol !== -1 && nextQuote > eol)) {
        // The common case: a line without quotes is one record.
        next = this.readPlainLine(text, i, eol, final, handlers);
      } else {
        next = this.readQuoted(text, i, final, handlers);
      }
      if (next === MORE) break;
      i = next;
    }
    this.pending = i < length ? text.slice(i) : '';
  }

  private readPlainLine(
    text: string,
    start: number,
    eol: number,
    final: boolean,
    handlers: CsvHandlers,
  ): number {
    const length = text.length;
    let end = eol;
    let next: number;
    if (end === -1) {
      if (!final) return this.tooLong(text, start, handlers);
      end = next = length;
    } else if (text.charCodeAt(end) === CR) {
      if (end + 1 === length && !final) return MORE; // a \r\n may be cut between two pieces
      next = text.charCodeAt(end + 1) === LF ? end + 2 : end + 1;
    } else {
      next = end + 1;
    }
    this.line++;
    if (end > start) {
      const raw = text.slice(start, end);
      handlers.record(raw.split(','), this.line, raw);
    }
    return next;
  }

  /** One record with a quote in it, from `start`; where the next record starts, or MORE. */
  private readQuoted(text: string, start: number, final: boolean, handlers: CsvHandlers): number {
    const length = text.length;
    const fields: string[] = [];
    let lines = 0; // line breaks inside quoted fields so far
    let p = start;
    for (;;) {
      if (text.charCodeAt(p) === QUOTE) {
        // A quoted field: up to the quote that is not doubled.
        let value = '';
        let from = p + 1;
        for (;;) {
          const close = text.indexOf('"', from);
          if (close === -1 || close - start > this.maxRecordChars) {
            if (!final && close === -1 && length - start <= this.maxRecordChars) return MORE;
            return this.reject(
              text,
              start,
              start,
              0,
              'a quoted field is never closed (a missing closing quote?)',
              final,
              handlers,
            );
          }
          if (close + 1 === length && !final) return MORE; // may be the first half of ""
          value += text.slice(from, close);
          if (text.charCodeAt(close + 1) === QUOTE) {
            value += '"';
            from = close + 2;
            continue;
          }
          p = close + 1;
          break;
        }
        lines += countLineBreaks(value);
        fields.push(value);
        const after = p < length ? text.charCodeAt(p) : -1;
        if (after === COMMA) {
          p++;
          continue;
        }
        if (after !== LF && after !== CR && after !== -1) {
          return this.reject(
            text,
            start,
            p,
            lines,
            'a closing quote must be followed by a comma or the end of the line',
            final,
            handlers,
          );
        }
      } else {
        // An unquoted field: up to the next comma or line break; no quote allowed in it.
        let q = p;
        let c = -1;
        while (q < length) {
          c = text.charCodeAt(q);
          if (c === COMMA || c === LF || c === CR || c === QUOTE) break;
          q++;
        }
        if (q === length) {
          if (!final) return this.tooLong(text, start, handlers);
          c = -1;
        }
        if (c === QUOTE) {
          return this.reject(
            text,
            start,
            q,
            lines,
            'a quote inside a field that does not start with one (quote the whole field, and double the quotes inside it)',
            final,
            handlers,
          );
        }
        fields.push(text.slice(p, q));
        p = q;
        if (c === COMMA) {
          p++;
          continue;
        }
      }
      // The end of the record: p is at its line break or at the end of the text.
      if (p === length) {
        if (!final) return this.tooLong(text, start, handlers);
      } else if (text.charCodeAt(p) === CR && p + 1 === length && !final) {
        return MORE;
      }
      this.line += lines + 1;
      handlers.record(fields, this.line, text.slice(start, p));
      if (p === length) return p;
      return text.charCodeAt(p) === CR && text.charCodeAt(p + 1) === LF ? p + 2 : p + 1;
    }
  }

  /** MORE while the record from `start` is within bounds, else it is reported as too long. */
  private tooLong(text: string, start: number, handlers: CsvHandlers): number {
    if (text.length - start <= this.maxRecordChars) return MORE;
    return this.reject(
      text,
      start,
      start,
      0,
      `a line longer than ${this.maxRecordChars} characters`,
      false,
      handlers,
    );
  }

  /**
   * Reports the record from `start` as malformed (found at `at`, after `lines` line breaks inside
   * it) and returns where reading resumes: after the line holding `at`.
   */
  private reject(
    text: string,
    start: number,
    at: number,
    lines: number,
    reason: string,
    final: boolean,
    handlers: CsvHandlers,
  ): number {
    const { end, next } = lineEnd(text, at);
    if (end + 1 === text.length && text.charCodeAt(end) === CR && !final) return MORE;
    let raw = text.slice(start, end);
    if (end === text.length && !final) {
      // The line goes on past what has been read: wait for it while it is short enough.
      if (end - start <= this.maxRecordChars) return MORE;
      raw = text.slice(start, start + this.maxRecordChars);
      this.skipping = true;
    }
    this.line += lines + 1;
    handlers.malformed(this.line, `malformed CSV: ${reason}`, raw);
    return next;
  }
}

/** The end of the line holding `from` (its line break, or the end of the text) and the next start. */
function lineEnd(text: string, from: number): { end: number; next: number } {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === LF) return { end: i, next: i + 1 };
    if (c === CR) return { end: i, next: text.charCodeAt(i + 1) === LF ? i + 2 : i + 1 };
  }
  return { end: text.length, next: text.length };
}

function countLineBreaks(value: string): number {
  let n = 0;
  for (let i = value.indexOf('\n'); i !== -1; i = value.indexOf('\n', i + 1)) n++;
  for (let i = value.indexOf('\r'); i !== -1; i = value.indexOf('\r', i + 1)) {
    if (value.charCodeAt(i + 1) !== LF) n++;
  }
  return n;
}
