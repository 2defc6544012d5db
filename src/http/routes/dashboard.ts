import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

/**
 * The dashboard's files (src/http/dashboard/): plain HTML, CSS and one script, no build step and no
 * CDN. tsc does not copy them to dist/, so a compiled Herald finds them in the source tree beside
 * dist/ (the folder is also looked for next to this file, for a build that does copy them).
 */
function assetsDirectory(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    join(here, '..', 'dashboard'),
    // dist/src/http/routes → the project's src/http/dashboard
    join(here, '..', '..', '..', '..', 'src', 'http', 'dashboard'),
  ];
  return candidates.find((dir) => existsSync(join(dir, 'index.html')));
}

const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

/**
 * The campaign dashboard at /dashboard/. Its files hold no data and need no key; the page asks for
 * an API key, keeps it in sessionStorage and calls the /v1 API with it as a Bearer token.
 */
export async function dashboardRoutes(app: FastifyInstance) {
  const directory = assetsDirectory();
  if (!directory) {
    // The API (and its webhooks) must not fail to start for want of the dashboard's files.
    app.log.warn(
      'dashboard files not found beside the build or in src/http/dashboard; /dashboard is off',
    );
    return;
  }
  // Read once: the files are small, and a running server should not change under a user.
  const contents = new Map<string, Buffer>();
  for (const name of Object.keys(FILES)) contents.set(name, await readFile(join(directory, name)));

  const send = (name: string) => ({
    schema: { hide: true },
    handler: async (_request: unknown, reply: import('fastify').FastifyReply) =>
      reply
        .type(FILES[name]!)
        .header('cache-control', 'no-cache')
        .header(
          'content-security-policy',
          "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        )
        .send(contents.get(name)),
  });

  app.get('/', { schema: { hide: true } }, async (_request, reply) =>
    reply.redirect('/dashboard/'),
  );
  app.get('/dashboard', { schema: { hide: true } }, async (_request, reply) =>
    reply.redirect('/dashboard/'),
  );
  app.get('/dashboard/', send('index.html'));
  for (const name of Object.keys(FILES)) app.get(`/dashboard/${name}`, send(name));
}
