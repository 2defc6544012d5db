import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../src/http/openapi.js';
import { SANDBOX_ACCOUNT, createTestEnv, recipientsCsv, type TestEnv } from './helpers/harness.js';

interface OpenApiDocument {
  openapi: string;
  info: { description: string };
  paths: Record<string, Record<string, OpenApiOperation>>;
}
interface OpenApiOperation {
  requestBody?: { content: Record<string, unknown> };
  responses: Record<string, { content?: Record<string, { schema: ErrorSchema }> }>;
}
interface ErrorSchema {
  properties?: { error?: { properties?: { code?: { enum?: string[] } } } };
}

describe('the OpenAPI document, validation, auth, rate limits and metrics', () => {
  let env: TestEnv;
  let root: string;
  let auth: Record<string, string>;

  beforeAll(async () => {
    // A small limit so that the rate-limit test needs few requests; the rest stay well under it.
    env = await createTestEnv({
      env: {
        HERALD_API_RATE_LIMIT: '40',
        HERALD_API_KEYS: `${randomBytes(16).toString('hex')},${randomBytes(16).toString('hex')}`,
      },
    });
    root = env.config.publicUrl;
    auth = { authorization: `Bearer ${env.config.apiKeys[0]}` };
  });
  afterAll(() => env.close());

  const json = (body: unknown) => ({
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

  it('serves an OpenAPI document generated from the route schemas, listing every error code', async () => {
    const response = await fetch(`${root}/docs/json`);
    expect(response.status).toBe(200);
    const document = (await response.json()) as OpenApiDocument;
    expect(document.openapi).toMatch(/^3\./);
    for (const [path, method] of [
      ['/v1/campaigns', 'post'],
      ['/v1/campaigns', 'get'],
      ['/v1/campaigns/{id}', 'get'],
      ['/v1/campaigns/{id}/report', 'get'],
      ['/v1/campaigns/{id}/recipients', 'post'],
      ['/v1/campaigns/{id}/estimate', 'get'],
      ['/v1/campaigns/{id}/start', 'post'],
      ['/v1/campaigns/{id}/schedule', 'post'],
      ['/v1/campaigns/{id}/pause', 'post'],
      ['/v1/campaigns/{id}/resume', 'post'],
      ['/v1/campaigns/{id}/cancel', 'post'],
      ['/v1/suppressions', 'post'],
      ['/v1/suppressions/{phone}', 'delete'],
      ['/v1/accounts', 'get'],
      ['/healthz', 'get'],
      ['/readyz', 'get'],
      ['/metrics', 'get'],
    ] as const) {
      expect(document.paths[path]?.[method], `${method} ${path}`).toBeDefined();
    }
    // Provider webhooks are not part of the public API.
    expect(Object.keys(document.paths).some((p) => p.startsWith('/webhooks'))).toBe(false);

    const upload = document.paths['/v1/campaigns/{id}/recipients']!.post!;
    expect(Object.keys(upload.requestBody!.content)).toEqual(['text/csv', 'multipart/form-data']);
    const uploadCodes =
      upload.responses['400']!.content!['application/json']!.schema.properties!.error!.properties!
        .code!.enum;
    expect(uploadCodes).toEqual(expect.arrayContaining(['CSV_EMPTY', 'CSV_NO_PHONE_COLUMN']));

    // Every code the routes document is in the catalogue, and the catalogue is in the document.
    const documented = new Set<string>();
    for (const operations of Object.values(document.paths))
      for (const operation of Object.values(operations))
        for (const response of Object.values(operation.responses ?? {}))
          for (const media of Object.values(response.content ?? {}))
            for (const code of media.schema.properties?.error?.properties?.code?.enum ?? [])
              documented.add(code);
    for (const code of documented) expect(Object.keys(ERROR_CODES)).toContain(code);
    for (const code of Object.keys(ERROR_CODES))
      expect(document.info.description).toContain(`\`${code}\``);
  });

  it('serves the docs page with its own assets, no CDN', async () => {
    const page = await fetch(`${root}/docs/`, { redirect: 'follow' });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).not.toMatch(/https?:\/\/(?!127\.0\.0\.1)[^"']*\.(js|css)/);
    const script = /src="\.?\/?([^"]*swagger-ui-bundle\.js)"/.exec(html);
    expect(script).not.toBeNull();
    const asset = await fetch(new URL(script![1]!, `${root}/docs/`));
    expect(asset.status).toBe(200);
    expect((await asset.text()).length).toBeGreaterThan(100_000);
  });

  it('answers malformed input with 400 VALIDATION_FAILED in the stable error shape', async () => {
    const missing = await fetch(`${root}/v1/campaigns`, json({ name: 'x', account: 'a' }));
    expect(missing.status).toBe(400);
    const body = (await missing.json()) as {
      error: { code: string; message: string; details: unknown[] };
    };
    expect(body.error.code).toBe('VALIDATION_FAILED');
    expect(body.error.message).toMatch(/template/);
    expect(body.error.details).toEqual([expect.objectContaining({ in: 'body' })]);

    const unknownField = await fetch(
      `${root}/v1/campaigns`,
      json({ name: 'x', account: SANDBOX_ACCOUNT, template: 'Hi', colour: 'red' }),
    );
    expect(((await unknownField.json()) as { error: { code: string } }).error.code).toBe(
      'VALIDATION_FAILED',
    );

    const wrongType = await fetch(
      `${root}/v1/suppressions`,
      json({ phone: { number: '0412000000' } }),
    );
    expect(wrongType.status).toBe(400);

    const badJson = await fetch(`${root}/v1/campaigns`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{"name":',
    });
    expect(badJson.status).toBe(400);
    expect(((await badJson.json()) as { error: { code: string } }).error.code).toBe('INVALID_JSON');

    const tooBig = await fetch(
      `${root}/v1/campaigns`,
      json({ name: 'x', account: SANDBOX_ACCOUNT, template: 'x'.repeat(1024 * 1024 + 10) }),
    );
    expect(tooBig.status).toBe(413);
    expect(((await tooBig.json()) as { error: { code: string } }).error.code).toBe(
      'BODY_TOO_LARGE',
    );

    // A valid request still works, with the schema's defaults applied.
    const created = await fetch(
      `${root}/v1/campaigns`,
      json({ name: 'ok', account: SANDBOX_ACCOUNT, template: 'Hi {{first_name}}' }),
    );
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ defaultRegion: 'AU', status: 'DRAFT' });
  });

  it('lists campaigns with their progress', async () => {
    const created = (await (
      await fetch(
        `${root}/v1/campaigns`,
        json({ name: 'progress', account: SANDBOX_ACCOUNT, template: 'Hi {{first_name}}' }),
      )
    ).json()) as { id: string };
    const upload = await fetch(`${root}/v1/campaigns/${created.id}/recipients`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'text/csv' },
      body: recipientsCsv(3, 100),
    });
    expect(upload.status).toBe(200);
    const list = (await (await fetch(`${root}/v1/campaigns`, { headers: auth })).json()) as {
      campaigns: Array<{ id: string; progress: unknown }>;
    };
    expect(list.campaigns.find((c) => c.id === created.id)?.progress).toEqual({
      total: 3,
      processed: 0,
      delivered: 0,
      failed: 0,
    });
  });

  it('exports Prometheus metrics without a key: queue depth, messages, report lag, errors', async () => {
    const response = await fetch(`${root}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    expect(text).toContain(`herald_queue_jobs{account="${SANDBOX_ACCOUNT}",state="waiting"} 0`);
    expect(text).toMatch(/^herald_messages\{status="PENDING"\} [1-9]/m);
    expect(text).toMatch(/^herald_messages_processed_total \d+/m);
    expect(text).toMatch(/^herald_send_rate_per_second \d/m);
    expect(text).toContain(`herald_delivery_report_lag_seconds{account="${SANDBOX_ACCOUNT}"} 0`);
    expect(text).toContain(`herald_account_paused{account="${SANDBOX_ACCOUNT}"} 0`);
    // The validation failures of the test above were counted by code.
    expect(text).toMatch(
      /^herald_api_errors_total\{code="VALIDATION_FAILED",status="400"\} [1-9]/m,
    );
  });

  it('refuses requests without a known key with 401 UNAUTHORIZED', async () => {
    for (const headers of [{}, { authorization: 'Bearer not-a-key-of-ours-at-all' }] as Array<
      Record<string, string>
    >) {
      const response = await fetch(`${root}/v1/campaigns`, { headers });
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
    }
    const board = await fetch(`${root}/admin/queues`);
    expect(board.status).toBe(401);
    expect(board.headers.get('www-authenticate')).toMatch(/^Basic/);
  });

  it('mounts Bull Board for operators behind the API key (HTTP Basic, key as password)', async () => {
    const basic = `Basic ${Buffer.from(`ops:${env.config.apiKeys[0]}`).toString('base64')}`;
    const page = await fetch(`${root}/admin/queues`, { headers: { authorization: basic } });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html/i);
    const queues = await fetch(`${root}/admin/queues/api/queues`, {
      headers: { authorization: basic },
    });
    expect(queues.status).toBe(200);
    const names = ((await queues.json()) as { queues: Array<{ name: string }> }).queues.map(
      (q) => q.name,
    );
    expect(names).toContain(`send-${SANDBOX_ACCOUNT}`);
  });

  it('limits each API key to HERALD_API_RATE_LIMIT requests a minute with 429 RATE_LIMITED', async () => {
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 45 && !limited; i++) {
      const response = await fetch(`${root}/v1/accounts`, { headers: auth });
      statuses.push(response.status);
      if (response.status === 429) limited = response;
      else await response.arrayBuffer();
    }
    expect(limited, 'a 429 within 45 requests at a limit of 40').toBeDefined();
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
    expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await limited!.json()).toMatchObject({
      error: { code: 'RATE_LIMITED', details: { limit: 40 } },
    });
    // Another key has its own budget: the limit is per key, not per client.
    const other = await fetch(`${root}/v1/accounts`, {
      headers: { authorization: `Bearer ${env.config.apiKeys[1]}` },
    });
    expect(other.status).toBe(200);
    // Health and metrics are never limited.
    expect((await fetch(`${root}/healthz`)).status).toBe(200);
    expect((await fetch(`${root}/metrics`)).status).toBe(200);
  });
});
