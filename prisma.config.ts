// Prisma CLI configuration. Herald runs Prisma without its downloaded native engines (the machines
// it is built on are offline): the CLI talks to Postgres through the `pg` driver adapter.
// See README.md "Database migrations".
import { PrismaPg } from '@prisma/adapter-pg';
import { defineConfig } from 'prisma/config';

// `prisma generate` (run on every install) needs no database, but with `env("DATABASE_URL")`
// unresolved the CLI falls back to downloading a native engine, which fails offline.
process.env.DATABASE_URL ??= 'postgresql://127.0.0.1:5432/herald';

/**
 * The adapter's `executeScript` splits a migration on every ";", which breaks any function body
 * (our counter triggers are PL/pgSQL). Postgres runs a multi-statement script itself when it is
 * sent whole over the simple query protocol, as one implicit transaction, so send it whole.
 */
class PrismaPgWholeScripts extends PrismaPg {
  override async connect() {
    const adapter = await super.connect();
    adapter.executeScript = async (script: string) => {
      try {
        await adapter.underlyingDriver().query(script);
      } catch (error) {
        // onError turns a pg error into the shape Prisma reports.
        (adapter as unknown as { onError(e: unknown): never }).onError(error);
      }
    };
    return adapter;
  }
}

export default defineConfig({
  schema: 'prisma/schema.prisma',
  experimental: { adapter: true },
  engine: 'js',
  adapter: async () => new PrismaPgWholeScripts({ connectionString: process.env.DATABASE_URL }),
});
