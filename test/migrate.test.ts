import { afterAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../src/db/database.js';
import { migrate } from '../src/db/migrate.js';
import { databaseUrl, dropDatabase, uniqueName } from './helpers/databases.js';

describe('migrate', () => {
  const name = uniqueName('herald_test_migrate');
  afterAll(() => dropDatabase(name));

  it('creates an empty database, applies every migration, and the schema answers queries', async () => {
    const url = databaseUrl(name);
    const first = await migrate(url);
    expect(first.created).toBe(true);
    expect(first.output).toMatch(
      /migrations? (have been )?(successfully )?applied|All migrations have been successfully applied/i,
    );

    const db = createDatabase(url);
    try {
      const campaign = await db.prisma.campaign.create({
        data: { name: 'm', accountName: 'a', template: 'hi' },
      });
      await db.prisma.message.createMany({
        data: [
          { campaignId: campaign.id, phone: '+61412000001' },
          { campaignId: campaign.id, phone: '+61412000002' },
        ],
      });
      // The counter triggers from the hand-written part of the migration are in place.
      const counters = await db.prisma.campaignCounter.aggregate({
        _sum: { count: true },
        where: { campaignId: campaign.id },
      });
      expect(counters._sum.count).toBe(2);
    } finally {
      await db.close();
    }

    // Running it again is a no-op.
    const second = await migrate(url);
    expect(second.created).toBe(false);
  });
});
