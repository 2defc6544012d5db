import { createReadStream, type ReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { loadConfig } from '../config/config.js';
import { UserError } from '../errors.js';
import { closeContext, createContext, type AppContext } from '../runtime/context.js';

/**
 * Runs a one-shot CLI command with a context (quiet logs unless LOG_LEVEL says otherwise) and
 * always closes it, so the process can exit.
 */
export async function withContext<T>(fn: (context: AppContext) => Promise<T>): Promise<T> {
  const config = loadConfig();
  if (!process.env.LOG_LEVEL) config.logLevel = 'warn';
  const context = createContext(config, { dbPoolSize: 4 });
  try {
    return await fn(context);
  } finally {
    await closeContext(context);
  }
}

/** A file to read, or a user error naming it. */
export async function openFile(file: string): Promise<ReadStream> {
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) throw new UserError('FILE_NOT_FOUND', `no such file: ${file}`);
  return createReadStream(file);
}
