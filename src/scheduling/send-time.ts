import { formatDuration } from '../duration.js';
import type { NativeScheduling } from '../providers/types.js';
import { isTooLate, nextOpening, type SendWindow } from './send-window.js';

/**
 * When one message may go: the one rule that the planner (putting messages in Redis) and the send
 * worker (about to call the provider) both apply, so a message that waited in a queue while a
 * window closed, or that a worker picked up early, is caught at the last moment.
 */

/** A campaign's timing rules, as stored on it. */
export interface TimingRules {
  /** Quiet hours (the hours it may send), or null for any time. */
  window: SendWindow | null;
  /** The campaign's time zone: the window's, for recipients whose row gave none. */
  timeZone: string;
  /** How late past its time a message may still go (workers were down). */
  maxLatenessMs: number;
}

/** A campaign's timing columns as stored (send_window is JSON checked when it was written). */
export interface CampaignTiming {
  timezone: string;
  sendWindow: unknown;
  maxLatenessMs: number | null;
}

/** The rules of a campaign, with the configured maximum lateness where it sets none. */
export function timingRules(campaign: CampaignTiming, defaultMaxLatenessMs: number): TimingRules {
  return {
    window: campaign.sendWindow ? (campaign.sendWindow as SendWindow) : null,
    timeZone: campaign.timezone,
    maxLatenessMs: campaign.maxLatenessMs ?? defaultMaxLatenessMs,
  };
}

/** One message's timing: its own send time, if it has one, and its row's time zone. */
export interface MessageTiming {
  dueAt: Date | null;
  timezone: string | null;
}

export type SendDecision =
  /** It may go now; with `sendAt`, handed to a provider that holds it until then. */
  | { action: 'send'; sendAt?: Date }
  /** Not yet: its time has not come, or the window is closed until `until`. */
  | { action: 'wait'; until: Date }
  /** It missed its time by more than the maximum lateness: EXPIRED, never sent. */
  | { action: 'expire'; code: 'MISSED_SEND_TIME'; reason: string };

/**
 * The time a message is meant to go: its own send time moved to the window's next opening. A
 * message without a send time has none (it goes as soon as the campaign reaches it, in the window).
 */
function intendedTime(message: MessageTiming, rules: TimingRules): Date | null {
  if (!message.dueAt) return null;
  if (!rules.window) return message.dueAt;
  return nextOpening(message.dueAt, rules.window, message.timezone ?? rules.timeZone);
}

/**
 * Native scheduling hands a message over no sooner than this before its time: closer than that,
 * Herald's own delayed job is as precise, and a time that passes while the request is on its way
 * would be refused by the provider as "in the past".
 */
export const NATIVE_MIN_LEAD_MS = 60_000;
/**
 * ...and no later than this inside the provider's limit (Optus: 60 days), for clocks that differ
 * and for the time a message waits in the queue before its request goes.
 */
export const NATIVE_LIMIT_MARGIN_MS = 3_600_000;

/** How far ahead a message may be handed to a provider that schedules natively. */
export function nativeHorizonMs(native: NativeScheduling): number {
  return native.maxAheadMs - NATIVE_LIMIT_MARGIN_MS;
}

/**
 * What to do with a message now. With `native` (the account hands messages to a provider that
 * holds them), a message that would wait is handed over at once with its time, when that time is
 * between NATIVE_MIN_LEAD_MS and the provider's limit (less a margin) away.
 */
export function decideSendTime(
  message: MessageTiming,
  rules: TimingRules,
  now: Date,
  native?: NativeScheduling,
): SendDecision {
  const decision = decideLocally(message, rules, now);
  if (decision.action !== 'wait' || !native) return decision;
  const lead = decision.until.getTime() - now.getTime();
  return lead >= NATIVE_MIN_LEAD_MS && lead <= nativeHorizonMs(native)
    ? { action: 'send', sendAt: decision.until }
    : decision;
}

function decideLocally(message: MessageTiming, rules: TimingRules, now: Date): SendDecision {
  const intended = intendedTime(message, rules);
  if (intended && intended > now) return { action: 'wait', until: intended };
  // Due (or no time of its own): the window must be open now, whenever it was meant to go.
  const opening = rules.window
    ? nextOpening(now, rules.window, message.timezone ?? rules.timeZone)
    : now;
  // Lateness counts from when it was meant to go; when the window has closed meanwhile, it would
  // go at the next opening, so that is what must stay within the maximum.
  if (intended && isTooLate(intended, opening, rules.maxLatenessMs)) {
    return {
      action: 'expire',
      code: 'MISSED_SEND_TIME',
      reason: missedReason(intended, opening, now, rules.maxLatenessMs),
    };
  }
  return opening > now ? { action: 'wait', until: opening } : { action: 'send' };
}

function missedReason(intended: Date, opening: Date, now: Date, maxLatenessMs: number): string {
  const when =
    opening > now ? `the send window next opens at ${opening.toISOString()}` : `it is now`;
  return (
    `missed its send time: due at ${intended.toISOString()}, ${when}, ` +
    `beyond the maximum lateness of ${formatDuration(maxLatenessMs)}`
  );
}
