import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured logs: a fixed message plus a context object. Credentials are redacted wherever they
 * appear; phone numbers and message bodies are never logged at info level (log `messageId`).
 */
export function createLogger(options: { level: string; name?: string }): Logger {
  return pino({
    name: options.name ?? 'herald',
    level: options.level,
    redact: {
      paths: [
        '*.password',
        '*.secret',
        '*.apiKey',
        '*.apiSecret',
        '*.token',
        '*.authorization',
        '*.Authorization',
        'headers.authorization',
        'req.headers.authorization',
        'credentials',
        '*.credentials',
      ],
      censor: '[redacted]',
    },
  });
}
