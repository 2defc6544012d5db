import type pg from 'pg';
import { UserError } from '../errors.js';
import { MissingFieldError, renderTemplate } from '../messages/template.js';

const PAGE = 5000;

/**
 * Every imported message of a campaign rendered with `template`, a page at a time in id order, so
 * checking a million recipients (a template edit, a fallback's body limit) holds one page in
 * memory. A recipient without a value for a field the template uses is TEMPLATE_FIELD_MISSING.
 */
export async function* renderedPages(
  db: pg.Pool | pg.PoolClient,
  campaignId: string,
  template: string,
): AsyncGenerator<Array<{ id: string; body: string }>> {
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const { rows } = await db.query<{ id: string; fields: Record<string, string> }>(
      'SELECT id, fields FROM message WHERE campaign_id = $1 AND id > $2 ORDER BY id LIMIT $3',
      [campaignId, after, PAGE],
    );
    if (rows.length === 0) return;
    yield rows.map((row) => {
      try {
        return { id: row.id, body: renderTemplate(template, row.fields) };
      } catch (error) {
        if (!(error instanceof MissingFieldError)) throw error;
        throw new UserError(
          'TEMPLATE_FIELD_MISSING',
          `the template uses {{${error.field}}}, which some recipients have no value for; nothing was changed`,
        );
      }
    });
    after = rows[rows.length - 1]!.id;
  }
}
