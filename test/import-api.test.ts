import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCampaign } from '../src/campaigns/campaign-service.js';
import { SANDBOX_ACCOUNT, createTestEnv, type TestEnv } from './helpers/harness.js';

describe('recipient lists and the suppression list through the HTTP API', () => {
  let env: TestEnv;
  let base: string;
  let auth: Record<string, string>;

  beforeAll(async () => {
    env = await createTestEnv({
      account: { pricePerSegment: 0.05 },
      env: { HERALD_MAX_UPLOAD_BYTES: '4096' },
    });
    base = `${env.config.publicUrl}/v1`;
    auth = { authorization: `Bearer ${env.config.apiKeys[0]}` };
  });
  afterAll(() => env.close());

  const newCampaign = async (template = 'Hi {{first_name}}') =>
    (await createCampaign(env.context, { name: 'api', account: SANDBOX_ACCOUNT, template })).id;
  const upload = (id: string, body: NonNullable<RequestInit['body']>, type?: string, query = '') =>
    fetch(`${base}/campaigns/${id}/recipients${query}`, {
      method: 'POST',
      headers: { ...auth, ...(type ? { 'content-type': type } : {}) },
      body,
    });
  const messageCount = async (id: string) =>
    Number(
      (
        await env.query<{ n: string }>('SELECT count(*) AS n FROM message WHERE campaign_id = $1', [
          id,
        ])
      )[0]!.n,
    );

  it('imports the good 70% of a list with 30% bad rows, and serves the rejected rows as CSV', async () => {
    const id = await newCampaign();
    const lines = ['phone,first_name'];
    for (let i = 0; i < 10; i++)
      lines.push(
        i % 10 < 3 ? `bad-${i},Name${i}` : `0412${String(500 + i).padStart(6, '0')},Name${i}`,
      );
    const response = await upload(id, `${lines.join('\n')}\n`, 'text/csv');
    expect(response.status).toBe(200);
    const report = (await response.json()) as {
      importId: string;
      accepted: number;
      rejected: number;
    };
    expect(report).toMatchObject({ rows: 10, accepted: 7, rejected: 3 });
    expect(await messageCount(id)).toBe(7);

    const csv = await fetch(`${base}/campaigns/${id}/imports/${report.importId}/rejections.csv`, {
      headers: auth,
    });
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(await csv.text()).toBe(
      [
        'line,reason,row',
        '2,"""bad-0"" is not a valid phone number","bad-0,Name0"',
        '3,"""bad-1"" is not a valid phone number","bad-1,Name1"',
        '4,"""bad-2"" is not a valid phone number","bad-2,Name2"',
        '',
      ].join('\r\n'),
    );
    const imports = (await (
      await fetch(`${base}/campaigns/${id}/imports`, { headers: auth })
    ).json()) as { imports: unknown[] };
    expect(imports.imports).toHaveLength(1);
  });

  it('accepts a multipart form with the phone column named in a field', async () => {
    const id = await newCampaign();
    const form = new FormData();
    form.append('phoneColumn', 'cell');
    form.append(
      'file',
      new Blob(['home,cell,first_name\n0298765432,0412000601,Al\n'], { type: 'text/csv' }),
      'list.csv',
    );
    const response = await upload(id, form);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ accepted: 1, phoneColumn: 'cell' });
  });

  it('estimates messages, segments and cost before the start', async () => {
    const id = await newCampaign('{{first_name}}: ' + 'x'.repeat(150)); // 2 segments with a long name
    await upload(id, 'phone,first_name\n0412000701,Al\n0412000702,Bartholomew\n', 'text/csv');
    const estimate = await (
      await fetch(`${base}/campaigns/${id}/estimate`, { headers: auth })
    ).json();
    expect(estimate).toEqual({
      messages: 2,
      segments: 3,
      multipart: 1,
      pricePerSegment: 0.05,
      cost: 0.15,
      currency: 'AUD',
    });
  });

  it('schedules rows by send_at in the row time zone, and rejects bad or past times', async () => {
    const id = await newCampaign();
    const csv = [
      'phone,first_name,send_at,timezone',
      '0412000801,A,2031-01-15 09:30,Australia/Perth',
      '0412000802,B,2031-01-15T09:30:00+11:00,',
      '0412000803,C,,',
      '0412000804,D,next tuesday,',
      '0412000805,E,2020-01-01 09:00,',
      '0412000806,F,2031-01-15 09:30,Mars/Olympus',
    ].join('\n');
    const report = (await (await upload(id, csv, 'text/csv')).json()) as {
      accepted: number;
      rejections: unknown[];
    };
    expect(report.accepted).toBe(3);
    expect(report.rejections).toEqual([
      {
        line: 5,
        reason:
          'send_at "next tuesday" is not a date and time (write 2026-12-01 09:30, or ISO 8601 with an offset)',
      },
      { line: 6, reason: 'send_at "2020-01-01 09:00" is in the past' },
      {
        line: 7,
        reason: 'unknown time zone "Mars/Olympus" (use an IANA name such as Australia/Sydney)',
      },
    ]);
    const rows = await env.query<{
      phone: string;
      due_at: Date | null;
      timezone: string | null;
      fields: object;
    }>(
      'SELECT phone, due_at, timezone, fields FROM message WHERE campaign_id = $1 ORDER BY phone',
      [id],
    );
    expect(rows.map((r) => [r.phone, r.due_at?.toISOString() ?? null, r.timezone])).toEqual([
      ['+61412000801', '2031-01-15T01:30:00.000Z', 'Australia/Perth'],
      ['+61412000802', '2031-01-14T22:30:00.000Z', null],
      ['+61412000803', null, null],
    ]);
    expect(rows[0]!.fields).toEqual({ first_name: 'A' }); // scheduling columns are not template fields
  });

  it('rejects rows whose message the provider would refuse as too long', async () => {
    const id = await newCampaign(`{{first_name}} ${'y'.repeat(1590)}`);
    const report = await (
      await upload(id, 'phone,first_name\n0412000901,Al\n0412000902,Maximilian\n', 'text/csv')
    ).json();
    expect(report).toMatchObject({
      accepted: 1,
      rejections: [
        {
          line: 3,
          reason:
            "the message would be 1601 characters; the account's provider accepts at most 1600",
        },
      ],
    });
  });

  it('refuses files it cannot read with a stable code, importing nothing', async () => {
    const id = await newCampaign();
    const expectRefused = async (response: Response, status: number, code: string) => {
      expect(response.status).toBe(status);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe(code);
      expect(await messageCount(id)).toBe(0);
    };
    const big = `phone,first_name\n${'0412000001,Someone\n'.repeat(300)}`;
    await expectRefused(await upload(id, big, 'text/csv'), 413, 'CSV_TOO_LARGE');
    const latin1 = Buffer.concat([
      Buffer.from('phone,first_name\n0412000001,Ren'),
      Buffer.from([0xe9]),
      Buffer.from('\n'),
    ]);
    await expectRefused(await upload(id, latin1, 'text/csv'), 415, 'CSV_NOT_UTF8');
    const zip = Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00]);
    await expectRefused(await upload(id, zip, 'text/csv'), 415, 'CSV_NOT_TEXT');
    await expectRefused(
      await upload(id, '{"phone": "0412"}', 'application/json'),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    await expectRefused(await upload(id, '', 'text/csv'), 400, 'CSV_EMPTY');
    const count = await env.query<{ n: string }>(
      'SELECT count(*) AS n FROM recipient_import WHERE campaign_id = $1',
      [id],
    );
    expect(Number(count[0]!.n)).toBe(0);
    // A UTF-8 BOM is fine.
    const bom = await upload(id, '\ufeffphone,first_name\n0412001001,Zoë\n', 'text/csv');
    expect(await bom.json()).toMatchObject({ accepted: 1 });
  });

  it('manages the suppression list: add, look up, remove, import and export', async () => {
    const post = (body: unknown) =>
      fetch(`${base}/suppressions`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await post({ phone: '0412 002 001', reason: 'asked by phone' })).status).toBe(201);
    expect(await (await post({ phone: '+61412002001' })).json()).toEqual({
      phone: '+61412002001',
      added: false,
    });
    const bad = await post({ phone: 'twelve' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({
      error: { code: 'PHONE_INVALID', message: '"twelve" is not a valid phone number' },
    });
    expect(
      await (await fetch(`${base}/suppressions/0412002001`, { headers: auth })).json(),
    ).toMatchObject({
      phone: '+61412002001',
      reason: 'asked by phone',
    });

    const imported = await fetch(`${base}/suppressions/import`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'text/csv' },
      body: 'Mobile,Reason\n0412002002,STOP\n0412002001,dup\nnope,x\n',
    });
    expect(await imported.json()).toEqual({
      rows: 3,
      added: 1,
      alreadyListed: 1,
      rejected: 1,
      rejections: [{ line: 4, reason: '"nope" is not a valid phone number' }],
    });
    const exported = await (await fetch(`${base}/suppressions.csv`, { headers: auth })).text();
    expect(exported).toMatch(/^phone,reason,created_at\r\n/);
    expect(exported).toContain('+61412002001,asked by phone,');
    expect(exported).toContain('+61412002002,STOP,');

    expect(
      (await fetch(`${base}/suppressions/0412002001`, { method: 'DELETE', headers: auth })).status,
    ).toBe(204);
    const again = await fetch(`${base}/suppressions/0412002001`, {
      method: 'DELETE',
      headers: auth,
    });
    expect(again.status).toBe(404);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe(
      'SUPPRESSION_NOT_FOUND',
    );
  });

  it('edits a draft campaign, checking a new template against the imported recipients', async () => {
    const id = await newCampaign();
    await upload(id, 'phone,first_name,city\n0412003101,Al,\n0412003102,Bea,Perth\n', 'text/csv');
    const patch = (body: unknown) =>
      fetch(`${base}/campaigns/${id}`, {
        method: 'PATCH',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const renamed = await patch({
      name: 'Spring sale',
      template: `Hello {{first_name}} ${'z'.repeat(160)}`,
    });
    expect(renamed.status).toBe(200);
    expect(await renamed.json()).toMatchObject({ name: 'Spring sale' });
    const segments = await env.query<{ segments: number }>(
      'SELECT segments FROM message WHERE campaign_id = $1',
      [id],
    );
    expect(segments.map((r) => r.segments)).toEqual([2, 2]);

    const missing = await patch({ template: 'Hi {{first_name}} from {{city}}' }); // Al has no city
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe(
      'TEMPLATE_FIELD_MISSING',
    );
    const region = await patch({ defaultRegion: 'NZ' });
    expect(((await region.json()) as { error: { code: string } }).error.code).toBe(
      'VALIDATION_FAILED',
    );
    expect(((await (await patch({})).json()) as { error: { code: string } }).error.code).toBe(
      'VALIDATION_FAILED',
    );

    await env.query(`UPDATE campaign SET status = 'RUNNING' WHERE id = $1`, [id]);
    const running = await patch({ name: 'too late' });
    expect(running.status).toBe(409);
    expect(((await running.json()) as { error: { code: string } }).error.code).toBe(
      'CAMPAIGN_NOT_EDITABLE',
    );
  });

  it('refuses requests without an API key', async () => {
    const response = await fetch(`${base}/suppressions.csv`);
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe(
      'UNAUTHORIZED',
    );
  });
});
