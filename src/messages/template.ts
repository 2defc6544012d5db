import { UserError } from '../errors.js';

// Placeholders are {{name}} with optional spaces inside the braces; names as normalised CSV headers.
const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/** Field names a template uses, in order of first use. Throws TEMPLATE_INVALID for stray braces. */
export function templateFields(template: string): string[] {
  const stripped = template.replace(PLACEHOLDER, '');
  if (stripped.includes('{{') || stripped.includes('}}')) {
    throw new UserError(
      'TEMPLATE_INVALID',
      'template has a malformed placeholder: use {{field_name}} (letters, digits and _)',
    );
  }
  return [...new Set(Array.from(template.matchAll(PLACEHOLDER), (m) => m[1]!))];
}

export class MissingFieldError extends Error {
  override readonly name = 'MissingFieldError';
  constructor(readonly field: string) {
    super(`no value for {{${field}}}`);
  }
}

/** Fills the placeholders; a field that is missing or blank is an error, never sent as a blank. */
export function renderTemplate(template: string, fields: Record<string, unknown>): string {
  return template.replace(PLACEHOLDER, (_, name: string) => {
    const value = fields[name];
    if (value === undefined || value === null || String(value).trim() === '')
      throw new MissingFieldError(name);
    return String(value);
  });
}

/**
 * A template split at its placeholders, to fill many times without a regular expression:
 * `literals[i]` comes before `fields[i]`, and one more literal ends it.
 */
export interface CompiledTemplate {
  literals: string[];
  fields: string[];
}

export function compileTemplate(template: string): CompiledTemplate {
  const literals: string[] = [];
  const fields: string[] = [];
  let last = 0;
  for (const match of template.matchAll(PLACEHOLDER)) {
    literals.push(template.slice(last, match.index));
    fields.push(match[1]!);
    last = match.index + match[0].length;
  }
  literals.push(template.slice(last));
  return { literals, fields };
}

/** CSV header → field name: trimmed, lowercased, runs of other characters to one underscore. */
export function fieldName(header: string): string {
  return header
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
}
