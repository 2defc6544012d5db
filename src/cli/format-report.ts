import type { CampaignReport, CampaignStats } from '../campaigns/campaign-stats.js';
import type { ImportReport } from '../campaigns/import-recipients.js';
import { formatDuration } from './progress-bar.js';

const n = (value: number) => value.toLocaleString('en-AU');
const pct = (value: number | null) => (value === null ? '—' : `${(value * 100).toFixed(1)}%`);

/** The progress line's text after the bar. */
export function progressSuffix(stats: CampaignStats, ratePerSecond: number | null): string {
  const eta =
    ratePerSecond && ratePerSecond > 0 && stats.remaining > 0
      ? ` · ETA ${formatDuration((stats.remaining / ratePerSecond) * 1000)}`
      : '';
  const rate = ratePerSecond !== null ? ` · ${Math.round(ratePerSecond)}/s` : '';
  return `sent · delivered ${n(stats.delivered)} · failed ${n(stats.failed)} · awaiting report ${n(stats.awaitingReport)}${rate}${eta}`;
}

export function formatImportReport(report: ImportReport, shown = 5): string {
  const lines = [
    `Imported ${n(report.rows)} rows (phone column "${report.phoneColumn}"): ${n(report.accepted)} accepted, ${n(report.rejected)} rejected, ${n(report.duplicates)} duplicates, ${n(report.suppressed)} suppressed`,
  ];
  for (const r of report.rejections.slice(0, shown)) lines.push(`  line ${r.line}: ${r.reason}`);
  if (report.rejected > shown)
    lines.push(`  … and ${n(report.rejected - shown)} more rejected rows`);
  return lines.join('\n');
}

export function formatCampaignReport(report: CampaignReport): string {
  const c = report.campaign;
  const duration = c.startedAt
    ? (c.completedAt ?? new Date()).getTime() - c.startedAt.getTime()
    : null;
  const lines = [
    `Campaign ${c.name} (${c.id})`,
    `  account ${c.account} · status ${c.status}${duration !== null ? ` · ran ${formatDuration(duration)}` : ''}`,
    `  recipients      ${n(report.total)}`,
    `  delivered       ${n(report.delivered)}   (delivery rate ${pct(report.deliveryRate)})`,
    `  failed          ${n(report.failed)}`,
    `  awaiting report ${n(report.awaitingReport)}`,
    `  unknown         ${n(report.counts.UNKNOWN)}`,
    `  suppressed      ${n(report.counts.SUPPRESSED)}`,
    `  not yet sent    ${n(report.remaining)}`,
    `  segments        ${n(report.segments)}`,
  ];
  if (report.sendRate !== null)
    lines.push(`  send rate       ${report.sendRate.toFixed(1)} messages/s`);
  if (report.failuresByReason.length > 0) {
    lines.push('  failures by reason:');
    for (const f of report.failuresByReason.slice(0, 10)) {
      lines.push(`    ${f.status.padEnd(13)} ${f.code.padEnd(28)} ${n(f.count)}`);
    }
  }
  return lines.join('\n');
}
