import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, UserError } from '../errors.js';

/** Provider types and what each needs; filled in by the provider registry (avoids an import cycle). */
export interface ProviderRequirements {
  defaultBaseUrl: string;
  credentialKeys: readonly string[];
  optionalCredentialKeys?: readonly string[];
  optionsSchema?: z.ZodType;
  /** Native scheduling for an account of this type, or undefined where there is none. */
  nativeScheduling?(account: Account): unknown;
}

const ENV_REF = /^env:([A-Za-z_][A-Za-z0-9_]*)$/;

const accountFileSchema = z.object({
  accounts: z
    .array(
      z.strictObject({
        /** Used in queue names and webhook URLs, so kept to a safe alphabet. */
        name: z
          .string()
          .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lowercase letters, digits and dashes'),
        provider: z.string().min(1),
        baseUrl: z.url({ protocol: /^https?$/ }).optional(),
        /** Each value is `env:VARIABLE`: secrets come from the environment, never the file. */
        credentials: z
          .record(z.string(), z.string().regex(ENV_REF, 'must be "env:VARIABLE_NAME"'))
          .default({}),
        /** Sender id or number the provider should show. */
        sender: z.string().min(1).optional(),
        /** Messages per second across all workers. */
        rate: z.number().positive(),
        /**
         * SMS segments per second across all workers, for providers whose limits count segments
         * (Bandwidth). Every request then waits for both its messages and its segments.
         */
        segmentRate: z.number().positive().optional(),
        /** Requests in flight at once per worker process. */
        concurrency: z.number().int().positive().max(1000).default(10),
        /**
         * What to do when a send's outcome is unknown (request written, no answer):
         * `at-most-once` marks it UNKNOWN; `at-least-once` sends it again.
         */
        deliveryPolicy: z.enum(['at-most-once', 'at-least-once']).default('at-most-once'),
        /**
         * Who holds a message until its send time: `local` (Herald, in Postgres then Redis) or
         * `native` (handed to the provider early with the time, where it can schedule).
         */
        scheduling: z.enum(['local', 'native']).default('local'),
        /** Price of one SMS segment, for estimates and reports. */
        pricePerSegment: z.number().nonnegative().optional(),
        /** Currency of `pricePerSegment` (ISO 4217); reports assume AUD when unset. */
        currency: z
          .string()
          .regex(/^[A-Z]{3}$/, 'must be a three-letter currency code such as AUD')
          .optional(),
        /** Provider-specific settings; each adapter documents its own. */
        options: z.record(z.string(), z.unknown()).default({}),
      }),
    )
    .min(1, 'must declare at least one account'),
});

type AccountSpec = z.infer<typeof accountFileSchema>['accounts'][number];

export interface Account extends Omit<AccountSpec, 'credentials' | 'baseUrl' | 'scheduling'> {
  baseUrl: string;
  /** Who holds a message until its send time. @defaultValue 'local' */
  scheduling?: AccountSpec['scheduling'];
  /** Resolved from the environment. Never log this object whole. */
  credentials: Record<string, string>;
}

/**
 * The most messages a second the account can send: its message rate, or its segment rate where
 * that is lower (every message is at least one segment). What to size queues and claims by.
 */
export function messageRateBound(account: Pick<Account, 'rate' | 'segmentRate'>): number {
  return Math.min(account.rate, account.segmentRate ?? Infinity);
}

/** The configured provider accounts, by name. */
export class AccountRegistry {
  private readonly byName: Map<string, Account>;

  constructor(accounts: Account[]) {
    this.byName = new Map(accounts.map((a) => [a.name, a]));
  }

  get names(): string[] {
    return [...this.byName.keys()];
  }

  all(): Account[] {
    return [...this.byName.values()];
  }

  /** The account, or undefined when none has that name (no longer configured, say). */
  find(name: string): Account | undefined {
    return this.byName.get(name);
  }

  /** The account, or a user error that lists the configured ones. */
  get(name: string): Account {
    const account = this.byName.get(name);
    if (!account) {
      throw new UserError(
        'ACCOUNT_UNKNOWN',
        `unknown account "${name}"; configured accounts: ${this.names.join(', ') || '(none)'}`,
        400,
        { configured: this.names },
      );
    }
    return account;
  }

  /** Public view: everything but credentials. */
  describe(): Array<Omit<Account, 'credentials'> & { credentials: string[] }> {
    return this.all().map(({ credentials, ...rest }) => ({
      ...rest,
      credentials: Object.keys(credentials),
    }));
  }
}

/**
 * Reads the accounts file and resolves each credential from the environment. Every problem names
 * the file, the account and the field or variable.
 */
export function loadAccounts(
  file: string,
  providers: Record<string, ProviderRequirements>,
  env: NodeJS.ProcessEnv,
): AccountRegistry {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'file not found'
        : String((error as Error).message);
    throw new ConfigError(`HERALD_ACCOUNTS_FILE: cannot read ${file}: ${reason}`);
  }
  const parsed = accountFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(
      `HERALD_ACCOUNTS_FILE ${file}: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  const seen = new Set<string>();
  const accounts = parsed.data.accounts.map((spec, index) => {
    const where = `HERALD_ACCOUNTS_FILE ${file}: accounts.${index} (${spec.name})`;
    if (seen.has(spec.name)) throw new ConfigError(`${where}: duplicate account name`);
    seen.add(spec.name);
    const provider = providers[spec.provider];
    if (!provider) {
      throw new ConfigError(
        `${where}: unknown provider "${spec.provider}"; known: ${Object.keys(providers).join(', ')}`,
      );
    }
    const known = [...provider.credentialKeys, ...(provider.optionalCredentialKeys ?? [])];
    const stray = Object.keys(spec.credentials).find((key) => !known.includes(key));
    if (stray)
      throw new ConfigError(
        `${where}: credentials.${stray} is not used by ${spec.provider}; it takes ${known.join(', ')}`,
      );
    const credentials: Record<string, string> = {};
    for (const key of known) {
      const ref = spec.credentials[key];
      if (!ref) {
        if (provider.credentialKeys.includes(key))
          throw new ConfigError(`${where}: credentials.${key} is required for ${spec.provider}`);
        continue;
      }
      const variable = ENV_REF.exec(ref)![1]!;
      const value = env[variable];
      if (!value)
        throw new ConfigError(`${variable}: not set (credentials.${key} of account ${spec.name})`);
      credentials[key] = value;
    }
    let options = spec.options;
    if (provider.optionsSchema) {
      const parsedOptions = provider.optionsSchema.safeParse(spec.options);
      if (!parsedOptions.success) {
        const issue = parsedOptions.error.issues[0]!;
        throw new ConfigError(`${where}: options.${issue.path.join('.')}: ${issue.message}`);
      }
      options = parsedOptions.data as Record<string, unknown>;
    }
    const account = {
      ...spec,
      options,
      baseUrl: spec.baseUrl ?? provider.defaultBaseUrl,
      credentials,
    };
    // Asking a provider to hold messages it cannot hold would send them at once: refuse to boot.
    if (account.scheduling === 'native' && !provider.nativeScheduling?.(account)) {
      throw new ConfigError(
        `${where}: scheduling "native": ${spec.provider} cannot schedule messages${spec.provider === 'telstra' ? ' (Telstra v3 and v2 can; check options.version)' : ''}; use "local" (Herald holds them until their time)`,
      );
    }
    return account;
  });
  return new AccountRegistry(accounts);
}
