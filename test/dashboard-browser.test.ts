import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_ACCOUNT, createTestEnv, recipientsCsv, type TestEnv } from './helpers/harness.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  // Visible in the test output: a skipped browser test must never pass for a passed one.
  console.warn(
    `SKIPPED dashboard browser test: ${CHROMIUM} not found (apt-get install -y chromium)`,
  );
}

const ARTIFACTS = join(import.meta.dirname, 'artifacts');

describe('the dashboard in a real browser', () => {
  let env: TestEnv;
  let browser: Browser | undefined;

  beforeAll(async () => {
    if (!hasChromium) return;
    env = await createTestEnv({ sandbox: { reportDelayMs: 20 }, account: { rate: 200 } });
    await env.startWorkerSet();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-quic',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await env?.close();
  });

  it.skipIf(!hasChromium)(
    'creates a campaign, uploads a list, starts it and watches it reach 100%',
    async () => {
      const page = await browser!.newPage({ viewport: { width: 1280, height: 1000 } });
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(String(error)));
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(message.text());
      });

      await page.goto(`${env.config.publicUrl}/dashboard/`);
      // A wrong key is refused and the login box stays.
      await page.fill('#api-key', 'not-a-key-of-ours-at-all');
      await page.click('#login-button');
      await page.locator('#flash', { hasText: 'UNAUTHORIZED' }).waitFor();
      expect(await page.isVisible('#login-view')).toBe(true);
      problems.length = 0; // the 401 above is logged by the browser as a failed resource

      await page.fill('#api-key', env.config.apiKeys[0]!);
      await page.click('#login-button');
      await page.locator('#list-view').waitFor();

      await page.click('#nav-new');
      await page.locator(`#c-account option[value="${SANDBOX_ACCOUNT}"]`).waitFor({
        state: 'attached',
      });
      await page.fill('#c-name', 'Browser spring sale');
      await page.selectOption('#c-account', SANDBOX_ACCOUNT);
      await page.fill('#c-template', 'Hi {{first_name}}, 20% off this week.');
      // 40 good rows and 2 bad ones: the validation report must show both.
      const csv = `${recipientsCsv(40).trimEnd()}\nnot-a-number,Bad\n12,Short\n`;
      const file = join(tmpdir(), `herald-browser-${process.pid}.csv`);
      await writeFile(file, csv);
      await page.setInputFiles('#c-file', file);
      await page.click('#create-button');

      const report = page.locator('[data-testid=import-report]');
      await report.waitFor().catch(async (error: Error) => {
        await mkdir(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: join(ARTIFACTS, 'dashboard-failure.png'), fullPage: true });
        throw new Error(
          `no import report; page says: ${await page.locator('main, #flash').allInnerTexts()} ${problems.join('; ')}`,
          { cause: error },
        );
      });
      const reportText = await report.innerText();
      expect(reportText).toMatch(/Accepted\s+40/);
      expect(reportText).toMatch(/Rejected\s+2/);
      expect(reportText).toContain('line 42');
      expect(await page.textContent('#cv-status')).toBe('DRAFT');
      expect(await page.isDisabled('#btn-pause')).toBe(true);

      await page.click('#btn-start');
      await page.locator('[data-testid=progress-text]', { hasText: '100%' }).waitFor({
        timeout: 30_000,
      });
      // Delivery reports arrive after the sends; the funnel shows them once folded.
      await page.locator('#cv-status', { hasText: 'COMPLETED' }).waitFor({ timeout: 30_000 });
      await page.locator('#chart svg rect.sent').first().waitFor({ timeout: 10_000 });
      const funnel = await page.innerText('#funnel');
      expect(funnel).toMatch(/Recipients\s+40/);

      // The page and the database agree on what was sent.
      const sent = await env.query<{ n: string }>(
        "SELECT count(*) AS n FROM message WHERE sent_at IS NOT NULL AND status <> 'PENDING'",
      );
      expect(Number(sent[0]!.n)).toBe(40);
      // The metrics see the same sends, from whichever process scrapes them.
      const metrics = await (await fetch(`${env.config.publicUrl}/metrics`)).text();
      expect(metrics).toMatch(/^herald_messages_processed_total 40$/m);
      expect(metrics).toMatch(/^herald_messages\{status="DELIVERED"\} [1-9]/m);

      await page.goto(`${env.config.publicUrl}/dashboard/#/`);
      const row = page.locator('#campaigns tbody tr', { hasText: 'Browser spring sale' });
      await row.waitFor();
      expect(await row.innerText()).toContain('100%');

      await row.locator('a').click();
      await page.locator('#cv-status', { hasText: 'COMPLETED' }).waitFor();
      await page.locator('#chart svg rect.sent').first().waitFor({ timeout: 10_000 });
      await mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard-campaign.png'), fullPage: true });
      expect(problems).toEqual([]);
      await page.close();
    },
    60_000,
  );
  it.skipIf(!hasChromium)(
    'renders the API docs and Bull Board from bundled assets, with no request leaving the host',
    async () => {
      const context = await browser!.newContext({
        httpCredentials: { username: 'ops', password: env.config.apiKeys[0]! },
      });
      const foreign: string[] = [];
      context.on('request', (request) => {
        const url = new URL(request.url());
        if (url.hostname !== '127.0.0.1' && url.protocol !== 'data:') foreign.push(request.url());
      });
      const page = await context.newPage();
      await page.goto(`${env.config.publicUrl}/docs`);
      await page.locator('.swagger-ui .info .title', { hasText: 'Herald API' }).waitFor();
      await page
        .locator('.opblock-summary-path', { hasText: '/v1/campaigns/{id}/start' })
        .first()
        .waitFor();
      await mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'api-docs.png') });

      await page.goto(`${env.config.publicUrl}/admin/queues`);
      await page.getByText(`send-${SANDBOX_ACCOUNT}`).first().waitFor();
      await page.screenshot({ path: join(ARTIFACTS, 'bull-board.png') });
      expect(foreign).toEqual([]);
      await context.close();
    },
  );
});
