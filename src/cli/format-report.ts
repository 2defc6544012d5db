import type { CampaignReport, CampaignStats } from '../campaigns/campaign-stats.js';
import type { ImportReport } from '../campaigns/import-recipients.js';
import { formatDuration } from '../duration.js';

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
    `  account ${c.account}${c.fallbackAccount ? ` (fallback ${c.fallbackAccount})` : ''} · status ${c.status}${duration !== null ? ` · ran ${formatDuration(duration)}` : ''}`,
    `  recipients      ${n(report.total)}`,
    `  delivered       ${n(report.delivered)}   (delivery rate ${pct(report.deliveryRate)})`,
    `  failed          ${n(report.failed)}`,
    `  awaiting report ${n(report.awaitingReport)}`,
    ...(report.scheduledAtProvider > 0
      ? [`  held by provider ${n(report.scheduledAtProvider)}   (scheduled there for later)`]
      : []),
    `  unknown         ${n(report.counts.UNKNOWN)}`,
    `  suppressed      ${n(report.counts.SUPPRESSED)}`,
    `  not yet sent    ${n(report.remaining)}`,
    `  segments        ${n(report.segments)}`,
    ...(c.fallbackAccount || report.viaFallback > 0
      ? [
          `  via fallback    ${n(report.viaFallback)}   (${report.handedOverByAccount.map((a) => `${a.account} ${n(a.messages)}`).join(', ') || 'none handed over yet'})`,
        ]
      : []),
  ];
  if (report.cost) {
    const money = (v: number) => `${report.cost!.currency} ${v.toFixed(2)}`;
    lines.push(
      `  cost            ${money(report.cost.spent)}${report.remaining > 0 ? ` (estimated total ${money(report.cost.estimatedTotal)})` : ''}`,
    );
  }
  lines.push(`  replies         ${n(report.replies)}`);
  lines.push(`  opted out       ${n(report.optedOut)}`);
  if (report.sendRate !== null)
    lines.push(`  send rate       ${report.sendRate.toFixed(1)} messages/s`);
  if (report.eta)
    lines.push(
      `  ETA             ${formatDuration(report.eta.remainingSeconds * 1000)} at ${report.eta.ratePerSecond.toFixed(1)}/s`,
    );
  const unmatched = report.unmatchedReports;
  if (unmatched.waiting > 0 || unmatched.expired > 0)
    lines.push(
      `  unmatched reports on ${unmatched.account}: ${n(unmatched.waiting)} waiting, ${n(unmatched.expired)} expired`,
    );
  if (report.throughput.length > 0) lines.push(...formatThroughput(report));
  if (report.failuresByReason.length > 0) {
    lines.push('  failures by reason:');
    for (const f of report.failuresByReason.slice(0, 10)) {
      lines.push(`    ${f.status.padEnd(13)} ${f.code.padEnd(28)} ${n(f.count)}`);
    }
  }
  return lines.join('\n');
}

/** Sends and final reports per bucket, the busiest buckets' bars scaled to 30 characters. */
function formatThroughput(report: CampaignReport, shown = 15): string[] {
  const buckets = report.throughput.slice(-shown);
  const seconds = report.throughputBucketSeconds;
  const size =
    seconds === 60
      ? 'minute'
      : seconds === 3600
        ? 'hour'
        : seconds === 86_400
          ? 'day'
          : formatDuration(seconds * 1000);
  const peak = Math.max(1, ...buckets.map((b) => b.sent));
  const lines = [`  throughput per ${size}, UTC (sent │ delivered · failed):`];
  if (report.throughput.length > shown)
    lines.push(`    … ${report.throughput.length - shown} earlier buckets (--json has all)`);
  for (const b of buckets) {
    const bar = '▇'.repeat(Math.round((b.sent / peak) * 30));
    lines.push(
      `    ${b.at.toISOString().slice(11, 16)} ${n(b.sent).padStart(8)} │ ${n(b.delivered)} · ${n(b.failed)}  ${bar}`,
    );
  }
  return lines;
}
