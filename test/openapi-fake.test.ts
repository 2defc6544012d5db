// The fake provider server must catch what a real provider would reject, or adapter tests that
// assert "zero violations" prove nothing. Checked here with the (small) Optus spec.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenApiFake, type FakeRequest, type OpenApiFake } from './helpers/openapi-fake.js';

const basic = `Basic ${Buffer.from('app:secret').toString('base64')}`;

describe('openapi-fake (Optus SMS REST v2 spec)', () => {
  let fake: OpenApiFake;
  const handled: FakeRequest[] = [];

  beforeAll(async () => {
    fake = await startOpenApiFake({
      spec: 'optus-sms-rest-v2.openapi.yml',
      basePath: '/rest/sms/v2',
      validateResponses: true,
      handle(request) {
        handled.push(request);
        if (request.method === 'GET')
          return { status: 200, body: { id: request.query.get('id'), status: 'sent' } };
        return {
          status: 202,
          body: { id: '3fa85f64-5717-4562-b3fc-2c963f66afa6', status: 'accepted' },
        };
      },
    });
  });
  afterAll(async () => {
    await fake.close();
  });

  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${fake.url}${path}`, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/json', ...headers },
      body,
    });

  it('accepts a request that matches the spec and lets the handler answer', async () => {
    const res = await post(
      '/messages',
      JSON.stringify({ destination: '+61412345678', content: 'hi', reference: 'x' }),
    );
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ status: 'accepted' });
    const get = await fetch(`${fake.url}/messages?id=3fa85f64-5717-4562-b3fc-2c963f66afa6`, {
      headers: { authorization: basic },
    });
    expect(get.status).toBe(200);
    expect(fake.violations).toEqual([]);
    expect(handled.map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /messages',
      'GET /messages',
    ]);
    expect(handled[0]!.body).toEqual({
      destination: '+61412345678',
      content: 'hi',
      reference: 'x',
    });
  });

  it('records a violation and answers 400 without calling the handler for each kind of mistake', async () => {
    const before = handled.length;
    // Functions, so the requests go one at a time and violations.at(-1) is this one's.
    const cases: Array<[() => Promise<Response>, RegExp]> = [
      [
        () => post('/messages', JSON.stringify({ destination: '+61412345678' })),
        /POST \/rest\/sms\/v2\/messages: body: .*content/,
      ],
      [
        () => post('/messages', JSON.stringify({ destination: 1, content: 'x' })),
        /body: \/destination must be string/,
      ],
      [
        () =>
          post(
            '/messages',
            JSON.stringify({ destination: 'x', content: 'x', mask: 'm'.repeat(21) }),
          ),
        /\/mask must NOT have more than 20/,
      ],
      [() => post('/messages', '{not json'), /body is not valid JSON/],
      [
        () => post('/messages', 'a=b', { 'content-type': 'application/x-www-form-urlencoded' }),
        /content-type .* not accepted/,
      ],
      [
        () =>
          post('/messages', JSON.stringify({ destination: 'x', content: 'x' }), {
            authorization: '',
          }),
        /missing credentials/,
      ],
      [
        () => fetch(`${fake.url}/messages?id=not-a-uuid`, { headers: { authorization: basic } }),
        /query parameter "id"/,
      ],
      [
        () => fetch(`${fake.url}/messages`, { headers: { authorization: basic } }),
        /missing required query parameter "id"/,
      ],
      [() => post('/sms', '{}'), /no such path in the spec/],
      [
        () =>
          fetch(`${fake.url}/messages`, { method: 'DELETE', headers: { authorization: basic } }),
        /method not allowed/,
      ],
      [() => fetch(`${fake.url.replace('/rest/sms/v2', '')}/messages`), /outside basePath/],
    ];
    for (const [response, expected] of cases) {
      const res = await response();
      expect(res.status, String(expected)).toBe(400);
      const body = (await res.json()) as { fakeViolation: string[] };
      expect(body.fakeViolation.join('\n')).toMatch(expected);
      expect(fake.violations.at(-1)).toMatch(expected);
    }
    expect(handled.length).toBe(before);
    fake.violations.length = 0;
  });

  it('checks the handler answers against the spec when validateResponses is on', async () => {
    const other = await startOpenApiFake({
      spec: 'optus-sms-rest-v2.openapi.yml',
      validateResponses: true,
      handle: () => ({ status: 400, body: { message: 'bad', error: 'missing_attrib' } }), // no statusCode
    });
    try {
      const res = await fetch(`${other.url}/messages`, {
        method: 'POST',
        headers: { authorization: basic, 'content-type': 'application/json' },
        body: JSON.stringify({ destination: '+61412345678', content: 'hi' }),
      });
      expect(res.status).toBe(400);
      expect(other.violations).toEqual([expect.stringMatching(/response 400 body: .*statusCode/)]);
    } finally {
      await other.close();
    }
  });

  it('loads every provider spec we use', async () => {
    for (const spec of [
      'telstra-messaging-v2.2.10.openapi.json',
      'telstra-messaging-v3.openapi.yaml',
      'optus-sms-status-health.openapi.json',
      'messagemedia-openapi.yaml',
      'bandwidth-messaging-v2.yml',
      'bandwidth-all-apis.yml',
    ]) {
      const f = await startOpenApiFake({ spec, handle: () => ({ status: 200 }) });
      await f.close();
    }
  });
});
