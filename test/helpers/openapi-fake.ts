// A local HTTP server that plays a provider for adapter tests. It loads the provider's official
// OpenAPI 3.0.x file (never a hand-copied schema), checks every request the adapter makes against
// it (operation exists, security present, path/query/header parameters, JSON body), and only then
// lets the test's `handle` answer. Anything wrong is recorded in `violations`, so a test can assert
// that the adapter spoke the provider's wire format exactly: `expect(fake.violations).toEqual([])`.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse as parseYaml } from 'yaml';

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  rawBody: string;
}

/**
 * What the fake answers. `body` is sent as JSON unless it is a string (sent as is).
 * Extension: `status: 0` destroys the connection without answering, to test transport failures
 * after the request was written.
 */
export interface FakeResponse {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

export interface OpenApiFake {
  /** e.g. http://127.0.0.1:PORT (+ basePath if given): use it as the account's baseUrl. */
  url: string;
  /** Every request received, in order (including the ones that violated the spec). */
  requests: FakeRequest[];
  /** Spec violations found (each names method, path and problem). */
  violations: string[];
  close(): Promise<void>;
}

export interface OpenApiFakeOptions {
  /** File name in the specs folder, e.g. 'optus-sms-rest-v2.openapi.yml'. */
  spec: string;
  /** Path prefix the adapter's baseUrl carries, stripped before matching spec paths. */
  basePath?: string;
  handle(request: FakeRequest): FakeResponse | Promise<FakeResponse>;
  /** Also check the handler's answers against the spec's responses (default false). */
  validateResponses?: boolean;
}

// ajv-formats is CommonJS with `exports.default`; under NodeNext the default import is the module
// object, so take `.default` when it is there.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
  addFormatsModule) as unknown as (ajv: Ajv) => Ajv;

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Resolves a provider's OpenAPI file. The files are vendored in `test/fixtures/provider-specs/`
 * (unmodified; provenance in its SOURCES.md) so a fresh clone tests alone; HERALD_SPECS_DIR
 * points at another copy, e.g. a newer download.
 */
export function specPath(file: string): string {
  const dir = process.env.HERALD_SPECS_DIR ?? join(repoRoot, 'test', 'fixtures', 'provider-specs');
  return join(dir, file);
}

type Json = Record<string, unknown>;

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required: boolean;
  isArray: boolean;
  validate: ValidateFunction;
}

interface Operation {
  method: string;
  template: string;
  regex: RegExp;
  pathParamNames: string[];
  parameters: Parameter[];
  body?: { required: boolean; content: Array<{ mediaType: string; validate?: ValidateFunction }> };
  /** Alternatives (OR); each alternative is a list of scheme objects that must all be present. */
  security: Json[][];
  responses: Array<{
    code: string;
    content: Array<{ mediaType: string; validate?: ValidateFunction }>;
  }>;
}

interface LoadedSpec {
  operations: Operation[];
}

// Loading and compiling a 300 KB spec takes a moment: do it once per spec per test file (vitest
// gives each test file its own module instance, so this cache is per file).
const loaded = new Map<string, LoadedSpec>();

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

function loadSpec(file: string): LoadedSpec {
  const path = specPath(file);
  const cached = loaded.get(path);
  if (cached) return cached;
  const text = readFileSync(path, 'utf8');
  const doc = (
    file.endsWith('.json') ? JSON.parse(text) : parseYaml(text, { maxAliasCount: -1 })
  ) as Json;
  if (typeof doc.openapi !== 'string' || !doc.openapi.startsWith('3.0')) {
    throw new Error(
      `${file}: only OpenAPI 3.0.x is supported (found ${String(doc.openapi ?? doc.swagger)})`,
    );
  }
  adaptOas30Schemas(doc);

  // Two validators over the same document: bodies are validated as sent; parameters arrive as
  // strings, so that one coerces ("5" → 5, "a" → ["a"]) before checking.
  // strict: false because OpenAPI schemas carry keywords JSON Schema does not know (example, xml,
  // discriminator, externalDocs) and formats like "none"; those are ignored, not errors.
  const makeAjv = (coerce: boolean) => {
    const ajv = new Ajv({
      strict: false,
      allErrors: true,
      validateSchema: false,
      logger: false,
      coerceTypes: coerce ? 'array' : false,
    });
    addFormats(ajv);
    // The whole document is one schema resource, so every '#/components/...' $ref inside resolves
    // against it; operation schemas are compiled by JSON pointer into it.
    ajv.addSchema(doc, 'spec');
    return ajv;
  };
  const bodyAjv = makeAjv(false);
  const paramAjv = makeAjv(true);
  const compile = (ajv: Ajv, pointer: string) => ajv.compile({ $ref: `spec#${pointer}` });

  const globalSecurity = (doc.security as Json[] | undefined) ?? [];
  const schemes = ((doc.components as Json | undefined)?.securitySchemes ?? {}) as Record<
    string,
    Json
  >;
  const operations: Operation[] = [];
  for (const [template, rawItem] of Object.entries((doc.paths ?? {}) as Record<string, Json>)) {
    const itemPointer = `/paths/${escapePointer(template)}`;
    const { value: item, pointer: itemAt } = deref(doc, rawItem, itemPointer);
    const pathParamNames = [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
    const regex = new RegExp(
      `^${template
        .split(/\{[^}]+\}/)
        .map((literal) => literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('([^/]+)')}$`,
    );
    for (const method of METHODS) {
      const op = item[method] as Json | undefined;
      if (!op) continue;
      const opAt = `${itemAt}/${method}`;

      // Path-level parameters apply unless the operation redefines the same name+in.
      const params = new Map<string, Parameter>();
      const addParams = (list: unknown, at: string) => {
        (Array.isArray(list) ? list : []).forEach((raw, i) => {
          const { value: p, pointer } = deref(doc, raw as Json, `${at}/${i}`);
          if (!p.schema) return; // content-typed parameters: rare, not checked
          const schema = deref(doc, p.schema as Json, `${pointer}/schema`).value;
          params.set(`${String(p.in)}:${String(p.name)}`, {
            name: String(p.name),
            in: p.in as Parameter['in'],
            required: p.required === true || p.in === 'path',
            isArray: schema.type === 'array',
            // Wrapped in an object so coercion can replace the value in place.
            validate: paramAjv.compile({
              type: 'object',
              properties: { value: { $ref: `spec#${pointer}/schema` } },
            }),
          });
        });
      };
      addParams(item.parameters, `${itemAt}/parameters`);
      addParams(op.parameters, `${opAt}/parameters`);

      let body: Operation['body'];
      if (op.requestBody) {
        const { value: rb, pointer: rbAt } = deref(
          doc,
          op.requestBody as Json,
          `${opAt}/requestBody`,
        );
        body = {
          required: rb.required === true,
          content: Object.entries((rb.content ?? {}) as Record<string, Json>).map(
            ([mediaType, media]) => ({
              mediaType,
              validate: media.schema
                ? compile(bodyAjv, `${rbAt}/content/${escapePointer(mediaType)}/schema`)
                : undefined,
            }),
          ),
        };
      }

      const responses: Operation['responses'] = [];
      for (const [code, raw] of Object.entries((op.responses ?? {}) as Record<string, Json>)) {
        const { value: r, pointer: rAt } = deref(doc, raw, `${opAt}/responses/${code}`);
        responses.push({
          code,
          content: Object.entries((r.content ?? {}) as Record<string, Json>).map(
            ([mediaType, media]) => ({
              mediaType,
              // Compiled lazily: most tests never validate responses, and big specs have many.
              get validate() {
                return media.schema
                  ? compile(bodyAjv, `${rAt}/content/${escapePointer(mediaType)}/schema`)
                  : undefined;
              },
            }),
          ),
        });
      }

      const requirements = (op.security as Json[] | undefined) ?? globalSecurity;
      operations.push({
        method: method.toUpperCase(),
        template,
        regex,
        pathParamNames,
        parameters: [...params.values()],
        body,
        security: requirements.map((req) =>
          Object.keys(req).map((name) => schemes[name] ?? { type: name }),
        ),
        responses,
      });
    }
  }
  // A literal segment beats a template (`/messages/status` before `/messages/{id}`).
  operations.sort((a, b) => a.pathParamNames.length - b.pathParamNames.length);
  const spec = { operations };
  loaded.set(path, spec);
  return spec;
}

/** OpenAPI 3.0 differs from JSON Schema in small ways; rewrite the document so ajv reads it right. */
function adaptOas30Schemas(node: unknown): void {
  if (Array.isArray(node)) {
    node.forEach(adaptOas30Schemas);
    return;
  }
  if (!node || typeof node !== 'object') return;
  const obj = node as Json;
  // OAS 3.0.3: nullable only adds null to an explicit `type`; without one it means nothing, but
  // ajv refuses it.
  if ('nullable' in obj && typeof obj.nullable === 'boolean' && obj.type === undefined)
    delete obj.nullable;
  // OAS 3.0 (draft-4 style) boolean exclusive bounds → JSON Schema numbers.
  for (const [flag, bound] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    if (typeof obj[flag] === 'boolean') {
      if (obj[flag] && typeof obj[bound] === 'number') {
        obj[flag] = obj[bound];
        delete obj[bound];
      } else delete obj[flag];
    }
  }
  for (const value of Object.values(obj)) adaptOas30Schemas(value);
}

function escapePointer(token: string): string {
  return encodeURIComponent(token.replace(/~/g, '~0').replace(/\//g, '~1'));
}

/** Follows local `$ref`s (parameters, request bodies, responses, path items) to the object. */
function deref(doc: Json, value: Json, pointer: string): { value: Json; pointer: string } {
  let current = value;
  let at = pointer;
  for (let hops = 0; typeof current.$ref === 'string'; hops++) {
    const ref = current.$ref;
    if (!ref.startsWith('#/') || hops > 20) throw new Error(`unsupported $ref ${ref}`);
    let target: unknown = doc;
    for (const token of ref.slice(2).split('/')) {
      const key = decodeURIComponent(token).replace(/~1/g, '/').replace(/~0/g, '~');
      target = (target as Json | undefined)?.[key];
    }
    if (!target || typeof target !== 'object') throw new Error(`unresolvable $ref ${ref}`);
    current = target as Json;
    at = ref
      .slice(1)
      .split('/')
      .map((t) =>
        t === ''
          ? ''
          : escapePointer(decodeURIComponent(t).replace(/~1/g, '/').replace(/~0/g, '~')),
      )
      .join('/');
  }
  return { value: current, pointer: at };
}

function mediaTypeMatches(declared: string, actual: string): boolean {
  const [type, sub] = declared.toLowerCase().split('/');
  const [aType, aSub] = actual.toLowerCase().split(';')[0]!.trim().split('/');
  return (type === '*' || type === aType) && (sub === '*' || sub === aSub);
}

const isJson = (mediaType: string) => /^application\/([\w.-]+\+)?json\b/i.test(mediaType);

function ajvErrors(validate: ValidateFunction): string {
  return (validate.errors ?? [])
    .map(
      (e) =>
        `${e.instancePath || '(root)'} ${e.message ?? 'invalid'}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`,
    )
    .join('; ');
}

/** Whether the request carries what one of the operation's security alternatives asks for. */
function securitySatisfied(op: Operation, req: FakeRequest): boolean {
  if (op.security.length === 0) return true;
  const auth = String(req.headers.authorization ?? '');
  return op.security.some((alternative) =>
    alternative.every((scheme) => {
      if (scheme.type === 'http')
        return auth.toLowerCase().startsWith(`${String(scheme.scheme).toLowerCase()} `);
      if (scheme.type === 'oauth2' || scheme.type === 'openIdConnect')
        return /^bearer /i.test(auth);
      if (scheme.type === 'apiKey') {
        const name = String(scheme.name);
        if (scheme.in === 'header') return Boolean(req.headers[name.toLowerCase()]);
        if (scheme.in === 'query') return req.query.has(name);
        return String(req.headers.cookie ?? '').includes(`${name}=`);
      }
      return false;
    }),
  );
}

/** Checks one request against the spec; returns its problems (empty when it conforms). */
function checkRequest(spec: LoadedSpec, req: FakeRequest): { op?: Operation; problems: string[] } {
  const candidates = spec.operations.filter((o) => o.regex.test(req.path));
  if (candidates.length === 0) return { problems: ['no such path in the spec'] };
  const op = candidates.find((o) => o.method === req.method);
  if (!op)
    return {
      problems: [`method not allowed (spec has ${candidates.map((o) => o.method).join(', ')})`],
    };

  const problems: string[] = [];
  if (!securitySatisfied(op, req))
    problems.push('missing credentials required by the security scheme');

  const pathValues = op.regex.exec(req.path)!.slice(1);
  // Query arrays are read in OpenAPI's default style (form, explode: repeated `?a=1&a=2`).
  for (const p of op.parameters) {
    let value: unknown;
    if (p.in === 'path')
      value = decodeURIComponent(pathValues[op.pathParamNames.indexOf(p.name)] ?? '');
    else if (p.in === 'query')
      value = p.isArray ? req.query.getAll(p.name) : (req.query.get(p.name) ?? undefined);
    else if (p.in === 'header') value = req.headers[p.name.toLowerCase()];
    else continue; // cookies: not used by any provider here
    if (value === undefined || (p.isArray && Array.isArray(value) && value.length === 0)) {
      if (p.required) problems.push(`missing required ${p.in} parameter "${p.name}"`);
      continue;
    }
    if (!p.validate({ value }))
      problems.push(`${p.in} parameter "${p.name}": ${ajvErrors(p.validate)}`);
  }

  if (req.rawBody.length === 0) {
    if (op.body?.required) problems.push('missing required request body');
  } else if (!op.body) {
    problems.push('request has a body but the operation takes none');
  } else {
    const contentType = String(req.headers['content-type'] ?? '');
    const media = op.body.content.find((c) => mediaTypeMatches(c.mediaType, contentType));
    if (!media) {
      problems.push(
        `content-type "${contentType}" not accepted (spec: ${op.body.content.map((c) => c.mediaType).join(', ')})`,
      );
    } else if (isJson(contentType)) {
      if (req.body === undefined) problems.push('body is not valid JSON');
      else if (media.validate && !media.validate(req.body))
        problems.push(`body: ${ajvErrors(media.validate)}`);
    }
    // Non-JSON bodies (forms, binaries) are only checked for their content type.
  }
  return { op, problems };
}

function checkResponse(op: Operation, res: FakeResponse): string[] {
  const code = String(res.status);
  const declared =
    op.responses.find((r) => r.code === code) ??
    op.responses.find((r) => r.code.toUpperCase() === `${code[0]}XX`) ??
    op.responses.find((r) => r.code === 'default');
  if (!declared) return [`response status ${code} not declared`];
  if (res.body === undefined || typeof res.body === 'string') return [];
  const contentType = res.headers?.['content-type'] ?? 'application/json';
  const media = declared.content.find((c) => mediaTypeMatches(c.mediaType, contentType));
  if (!media)
    return declared.content.length
      ? [`response ${code} content-type "${contentType}" not declared`]
      : [];
  const validate = media.validate;
  if (validate && !validate(res.body)) return [`response ${code} body: ${ajvErrors(validate)}`];
  return [];
}

function parseBody(raw: string, contentType: string): unknown {
  if (raw.length === 0) return undefined;
  if (isJson(contentType) || /^\s*[[{]/.test(raw)) {
    try {
      return JSON.parse(raw);
    } catch {
      return isJson(contentType) ? undefined : raw;
    }
  }
  if (/^application\/x-www-form-urlencoded/i.test(contentType)) {
    return Object.fromEntries(new URLSearchParams(raw));
  }
  return raw;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, answer: FakeResponse): void {
  if (answer.status === 0) {
    res.socket?.destroy();
    return;
  }
  const headers: Record<string, string> = { ...answer.headers };
  let payload = '';
  if (answer.body !== undefined) {
    const hasType = Object.keys(headers).some((h) => h.toLowerCase() === 'content-type');
    if (typeof answer.body === 'string') {
      payload = answer.body;
      if (!hasType) headers['content-type'] = 'text/plain';
    } else {
      payload = JSON.stringify(answer.body);
      if (!hasType) headers['content-type'] = 'application/json';
    }
  }
  res.writeHead(answer.status, headers).end(payload);
}

export async function startOpenApiFake(options: OpenApiFakeOptions): Promise<OpenApiFake> {
  const spec = loadSpec(options.spec);
  const basePath = (options.basePath ?? '').replace(/\/+$/, '');
  const requests: FakeRequest[] = [];
  const violations: string[] = [];

  const server = createServer(async (req, res) => {
    const rawBody = await readBody(req);
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = (req.method ?? 'GET').toUpperCase();
    const inBase =
      basePath === '' || url.pathname === basePath || url.pathname.startsWith(`${basePath}/`);
    const request: FakeRequest = {
      method,
      path: inBase ? url.pathname.slice(basePath.length) || '/' : url.pathname,
      query: url.searchParams,
      headers: req.headers,
      body: parseBody(rawBody, String(req.headers['content-type'] ?? '')),
      rawBody,
    };
    requests.push(request);

    const { op, problems } = inBase
      ? checkRequest(spec, request)
      : { op: undefined, problems: [`path is outside basePath ${basePath}`] };
    if (problems.length > 0 || !op) {
      const named = problems.map((p) => `${method} ${url.pathname}: ${p}`);
      violations.push(...named);
      send(res, { status: 400, body: { fakeViolation: named } });
      return;
    }

    let answer: FakeResponse;
    try {
      answer = await options.handle(request);
    } catch (err) {
      // A throwing handler is a bug in the test; make it fail the zero-violations assertion too.
      const message = `${method} ${url.pathname}: fake handler threw: ${(err as Error).message}`;
      violations.push(message);
      send(res, { status: 500, body: { fakeError: message } });
      return;
    }
    if (options.validateResponses && answer.status !== 0) {
      violations.push(...checkResponse(op, answer).map((p) => `${method} ${url.pathname}: ${p}`));
    }
    send(res, answer);
  });

  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${basePath}`,
    requests,
    violations,
    async close() {
      // Clients keep connections alive (undici pools): drop them, or close() waits for them.
      server.closeAllConnections();
      await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
    },
  };
}
