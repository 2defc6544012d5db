import type { TestProject } from 'vitest/node';
import { migrate } from '../src/db/migrate.js';
import { databaseUrl, dropDatabase, uniqueName } from './helpers/databases.js';

declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: string;
  }
}

/**
 * Migrates one template database per test run; each test file then clones it (CREATE DATABASE …
 * TEMPLATE), which takes milliseconds instead of a migration per file.
 */
export default async function setup(project: TestProject) {
  const name = uniqueName('herald_test_template');
  await migrate(databaseUrl(name));
  project.provide('templateDatabase', name);
  return async () => {
    await dropDatabase(name);
  };
}
