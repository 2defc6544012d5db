import { getCampaignStats, type CampaignStats } from '../campaigns/campaign-stats.js';
import type { AppContext } from '../runtime/context.js';
import { progressSuffix } from './format-report.js';
import { ProgressBar } from './progress-bar.js';

export interface WatchOptions {
  /** @defaultValue 500 */
  intervalMs?: number;
  /** After sending finishes, wait at most this long for outstanding delivery reports. @defaultValue 30000 */
  reportGraceMs?: number;
  stream?: NodeJS.WriteStream;
}

/**
 * Shows a live progress bar (sent / delivered / failed, rate, ETA) until the campaign has finished
 * sending and its delivery reports are in (or the grace time for them has passed).
 */
export async function watchCampaign(
  context: AppContext,
  campaignId: string,
  options: WatchOptions = {},
): Promise<CampaignStats> {
  const interval = options.intervalMs ?? 500;
  const grace = options.reportGraceMs ?? 30_000;
  const bar = new ProgressBar(options.stream);
  const samples: Array<{ at: number; processed: number }> = [];
  let finishedSendingAt: number | undefined;
  try {
    for (;;) {
      const stats = await getCampaignStats(context, campaignId);
      const now = Date.now();
      samples.push({ at: now, processed: stats.processed });
      while (samples.length > 2 && now - samples[0]!.at > 5000) samples.shift();
      const first = samples[0]!;
      // The recent rate (last 5 s) follows pauses and rate changes; until there is a second of
      // samples, fall back on the campaign's average since it started (stats.eta).
      const rate =
        now - first.at >= 900
          ? ((stats.processed - first.processed) * 1000) / (now - first.at)
          : (stats.eta?.ratePerSecond ?? null);
      bar.update(stats.processed, stats.total, progressSuffix(stats, rate));

      const done = stats.campaign.status === 'COMPLETED' || stats.campaign.status === 'CANCELLED';
      if (done) {
        finishedSendingAt ??= now;
        if (stats.awaitingReport === 0 || now - finishedSendingAt >= grace) return stats;
      }
      await new Promise((resolve) => setTimeout(resolve, interval));
    }
  } finally {
    bar.finish();
  }
}
