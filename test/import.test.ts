import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCampaign } from '../src/campaigns/campaign-service.js';
import { importRecipients } from '../src/campaigns/import-recipients.js';
import { UserError } from '../src/errors.js';
import { SANDBOX_ACCOUNT, createTestEnv, type TestEnv } from './helpers/harness.js';

describe('recipient import', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv();
  });
  afterAll(() => env.close());

  const newCampaign = (template = 'Hi {{first_name}}') =>
    createCampaign(env.context, { name: 'import', account: SANDBOX_ACCOUNT, template });
  const run = async (csv: string, template?: string, phoneColumn?: string) => {
    const campaign = await newCampaign(template);
    const report = await importRecipients(env.context, campaign.id, Readable.from([csv]), {
      phoneColumn,
    });
    return { campaign, report };
  };
  const failure = async (csv: string, template?: string): Promise<UserError> => {
    const campaign = await newCampaign(template);
    try {
      await importRecipients(env.context, campaign.id, Readable.from([csv]));
    } catch (error) {
      expect(error).toBeInstanceOf(UserError);
      const count = await env.query<{ n: string }>(
        'SELECT count(*) AS n FROM message WHERE campaign_id = $1',
        [campaign.id],
      );
      expect(Number(count[0]!.n)).toBe(0); // nothing half-imported
      return error as UserError;
    }
    throw new Error('expected the import to fail');
  };

  it('imports good rows and reports each bad one with its line and reason', async () => {
    const csv = [
      '\ufeffMobile Number,First Name,Plan',
      '0412 000 001,Ann,gold', // 2: ok
      '+61412000002,Bob,silver', // 3: ok
      '12345,Cy,gold', // 4: invalid
      '(02) 9876 5432,Di,gold', // 5: landline
      '0412000003,,gold', // 6: blank field the template uses
      '0412000004,Ed', // 7: too few columns
      '0412000001,Ann again,gold', // 8: duplicate of line 2
      '',
      '0412000005,Flo,bronze', // 10: ok
    ].join('\n');
    const { campaign, report } = await run(csv);
    expect(report).toMatchObject({
      rows: 8,
      accepted: 3,
      rejected: 4,
      duplicates: 1,
      suppressed: 0,
      phoneColumn: 'mobile_number',
    });
    expect(report.rejections).toEqual([
      { line: 4, reason: '"12345" is not a valid phone number' },
      { line: 5, reason: '"(02) 9876 5432" cannot receive SMS (fixed line number)' },
      { line: 6, reason: 'empty value for {{first_name}}, which the template uses' },
      { line: 7, reason: 'expected 3 columns, found 2' },
    ]);
    const rows = await env.query<{ phone: string; fields: Record<string, string> }>(
      'SELECT phone, fields FROM message WHERE campaign_id = $1 ORDER BY phone',
      [campaign.id],
    );
    expect(rows).toEqual([
      { phone: '+61412000001', fields: { first_name: 'Ann', plan: 'gold' } },
      { phone: '+61412000002', fields: { first_name: 'Bob', plan: 'silver' } },
      { phone: '+61412000005', fields: { first_name: 'Flo', plan: 'bronze' } },
    ]);
  });

  it('skips and counts suppressed numbers, and duplicates already in the campaign', async () => {
    await env.query(
      `INSERT INTO suppression (phone, reason) VALUES ('+61412000102', 'STOP reply') ON CONFLICT DO NOTHING`,
    );
    const campaign = await newCampaign();
    const first = await importRecipients(
      env.context,
      campaign.id,
      Readable.from(['phone,first_name\n0412000101,A\n0412000102,B\n']),
    );
    expect(first).toMatchObject({ accepted: 1, suppressed: 1, duplicates: 0 });
    const second = await importRecipients(
      env.context,
      campaign.id,
      Readable.from(['phone,first_name\n0412000101,A\n0412000103,C\n']),
    );
    expect(second).toMatchObject({ accepted: 1, duplicates: 1 });
  });

  it('keeps the first row per number when duplicates fall in different batches', async () => {
    const campaign = await newCampaign();
    const csv =
      'phone,first_name\n0412000401,First\n0412000402,B\nbad,C\n0412000401,Second\n0412000403,D\n0412000402,E\n';
    const report = await importRecipients(env.context, campaign.id, Readable.from([csv]), {
      batchRows: 2,
    });
    expect(report).toMatchObject({ rows: 6, accepted: 3, rejected: 1, duplicates: 2 });
    const rows = await env.query<{ phone: string; fields: { first_name: string } }>(
      'SELECT phone, fields FROM message WHERE campaign_id = $1 ORDER BY phone',
      [campaign.id],
    );
    expect(rows.map((r) => r.fields.first_name)).toEqual(['First', 'B', 'D']);
  });

  it('counts every row of a suppressed number, and keeps file order in the message ids', async () => {
    await env.query(
      `INSERT INTO suppression (phone, reason) VALUES ('+61412000902', 'STOP reply') ON CONFLICT DO NOTHING`,
    );
    const csv =
      'phone,first_name\n0412000903,Zoë\n0412000902,B\nbad,X\n0412000901,Añil 😀\n0412000902,B again\n0412000903,C again\n';
    const { campaign, report } = await run(csv);
    expect(report).toMatchObject({
      rows: 6,
      accepted: 2,
      rejected: 1,
      suppressed: 2,
      duplicates: 1,
    });
    const rows = await env.query<{ phone: string; fields: { first_name: string } }>(
      'SELECT phone, fields FROM message WHERE campaign_id = $1 ORDER BY id',
      [campaign.id],
    );
    expect(rows.map((r) => [r.phone, r.fields.first_name])).toEqual([
      ['+61412000903', 'Zoë'],
      ['+61412000901', 'Añil 😀'],
    ]);
  });

  it('keeps the first row per number across batches when the campaign already has recipients', async () => {
    const campaign = await newCampaign();
    await importRecipients(
      env.context,
      campaign.id,
      Readable.from(['phone,first_name\n0412000951,Earlier\n']),
    );
    const csv =
      'phone,first_name\n0412000952,A\n0412000951,Again\n0412000953,B\n0412000952,A again\n0412000954,C\n';
    const report = await importRecipients(env.context, campaign.id, Readable.from([csv]), {
      batchRows: 2,
    });
    expect(report).toMatchObject({ rows: 5, accepted: 3, duplicates: 2 });
    const rows = await env.query<{ phone: string; fields: { first_name: string } }>(
      'SELECT phone, fields FROM message WHERE campaign_id = $1 ORDER BY phone',
      [campaign.id],
    );
    expect(rows.map((r) => r.fields.first_name)).toEqual(['Earlier', 'A', 'B', 'C']);
  });

  it('imports into one campaign one file at a time, so overlapping lists collapse', async () => {
    const campaign = await newCampaign();
    const list = (from: number) => {
      const lines = ['phone,first_name'];
      for (let i = from; i < from + 3000; i++)
        lines.push(`0413${String(i).padStart(6, '0')},N${i}`);
      return `${lines.join('\n')}\n`;
    };
    const reports = await Promise.all(
      [0, 1500, 2000].map((from) =>
        importRecipients(env.context, campaign.id, Readable.from([list(from)]), {
          batchRows: 500,
        }),
      ),
    );
    expect(reports.reduce((n, r) => n + r.accepted, 0)).toBe(5000);
    expect(reports.reduce((n, r) => n + r.duplicates, 0)).toBe(4000);
    const count = await env.query<{ n: string }>(
      'SELECT count(*) AS n FROM message WHERE campaign_id = $1',
      [campaign.id],
    );
    expect(Number(count[0]!.n)).toBe(5000);
  });

  it('reports malformed CSV rows by line and imports the rows after them', async () => {
    const csv = [
      'phone,first_name',
      '0412000961,"Ann ""Annie"" Lee"', // 2: ok, quotes inside a quoted field
      '0412000962,Bob "the builder"', // 3: a quote inside an unquoted field
      '0412000963,"Cy" Jones', // 4: text after a closing quote
      '0412000964,"Di', // 5: a quote never closed
      '0412000965,Ed', // 6: ok
    ].join('\r\n');
    const { campaign, report } = await run(csv);
    expect(report).toMatchObject({ rows: 5, accepted: 2, rejected: 3 });
    expect(report.rejections.map((r) => r.line)).toEqual([3, 4, 5]);
    expect(report.rejections[0]!.reason).toMatch(/^malformed CSV: a quote inside a field/);
    const stored = await env.query<{ line: number; raw: string }>(
      `SELECT line, raw FROM import_rejection WHERE import_id = $1 ORDER BY line`,
      [report.importId],
    );
    expect(stored).toEqual([
      { line: 3, raw: '0412000962,Bob "the builder"' },
      { line: 4, raw: '0412000963,"Cy" Jones' },
      { line: 5, raw: '0412000964,"Di' },
    ]);
    const rows = await env.query<{ fields: { first_name: string } }>(
      'SELECT fields FROM message WHERE campaign_id = $1 ORDER BY phone',
      [campaign.id],
    );
    expect(rows.map((r) => r.fields.first_name)).toEqual(['Ann "Annie" Lee', 'Ed']);
  });

  it('uses the phone column it is told to', async () => {
    const { report } = await run(
      'home,cell,first_name\n0298765432,0412000201,Al\n',
      undefined,
      'cell',
    );
    expect(report).toMatchObject({ accepted: 1, phoneColumn: 'cell' });
  });

  it('refuses files it cannot use, with a stable code and nothing imported', async () => {
    expect((await failure('')).code).toBe('CSV_EMPTY');
    const noPhone = await failure('name,email\nAnn,a@example.com\n');
    expect(noPhone.code).toBe('CSV_NO_PHONE_COLUMN');
    expect(noPhone.message).toContain('columns found: name, email');
    const unknownField = await failure('phone,name\n0412000301,Ann\n', 'Hi {{first_name}}');
    expect(unknownField.code).toBe('TEMPLATE_FIELD_UNKNOWN');
    expect(unknownField.message).toBe(
      'the template uses {{first_name}} but the file has no such column; columns found: phone, name',
    );
    const nothingValid = await failure('phone,first_name\nabc,Ann\n123,Bob\n');
    expect(nothingValid.code).toBe('CSV_NO_VALID_ROWS');
    expect(nothingValid.message).toBe(
      'no valid rows: 2 of 2 rows were rejected; nothing was imported',
    );
  });
});
