import { z } from 'zod';
import { UserError } from '../errors.js';
import { zonedTimeToUtc, zoneOffsetMs } from '../messages/zoned-time.js';

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Day = (typeof DAYS)[number];
const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;

/**
 * Quiet hours, as the hours a campaign may send: e.g. 09:00–20:00 Monday to Saturday, in the
 * recipient's time zone (the row's `timezone`, else the campaign's).
 */
export interface SendWindow {
  days: Day[];
  /** Local time the window opens, "HH:MM". */
  start: string;
  /** Local time it closes, "HH:MM", later than start (a window does not cross midnight). */
  end: string;
}

const sendWindowSchema = z.strictObject({
  days: z.array(z.enum(DAYS)).min(1, 'must name at least one day (mon … sun)'),
  start: z.string().regex(HHMM, 'must be HH:MM'),
  end: z.string().regex(HHMM, 'must be HH:MM'),
});

/** A window from user input, or SEND_WINDOW_INVALID saying why (including one that never opens). */
export function parseSendWindow(input: unknown): SendWindow {
  const parsed = sendWindowSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UserError(
      'SEND_WINDOW_INVALID',
      `sendWindow.${issue.path.join('.')}: ${issue.message}`,
    );
  }
  const window = parsed.data;
  if (minutes(window.end) <= minutes(window.start)) {
    throw new UserError(
      'SEND_WINDOW_INVALID',
      `sendWindow never opens: it ends (${window.end}) at or before it starts (${window.start})`,
    );
  }
  return { ...window, days: [...new Set(window.days)] };
}

/**
 * A window written as on the command line: days (names, ranges, or both, comma-separated) and
 * hours, e.g. "mon-sat 09:00-20:00", "mon,wed,fri 08:30-17:00", "daily 09:00-21:00".
 */
export function parseSendWindowText(text: string): SendWindow {
  const match = /^\s*(\S+)\s+(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$/.exec(text);
  if (!match) {
    throw new UserError(
      'SEND_WINDOW_INVALID',
      `send window "${text}": write days and hours, e.g. "mon-sat 09:00-20:00"`,
    );
  }
  const [, dayText, start, end] = match as unknown as [string, string, string, string];
  const days: string[] = [];
  for (const part of dayText.toLowerCase().split(',')) {
    if (part === 'daily') {
      days.push(...DAYS);
      continue;
    }
    const [from, to] = part.split('-') as [string, string | undefined];
    const first = DAYS.indexOf(from as Day);
    const last = to === undefined ? first : DAYS.indexOf(to as Day);
    if (first < 0 || last < 0) {
      throw new UserError(
        'SEND_WINDOW_INVALID',
        `send window "${text}": "${part}" is not a day or range of days (mon … sun, e.g. mon-fri)`,
      );
    }
    // A range may wrap the week's end: fri-mon is Friday to Monday.
    for (let i = first; ; i = (i + 1) % 7) {
      days.push(DAYS[i]!);
      if (i === last) break;
    }
  }
  return parseSendWindow({ days, start: start.padStart(5, '0'), end: end.padStart(5, '0') });
}

/** The window as parseSendWindowText reads it, for reports and logs. */
export function formatSendWindow(window: SendWindow): string {
  const ordered = DAYS.filter((d) => window.days.includes(d));
  return `${ordered.join(',')} ${window.start}-${window.end}`;
}

function minutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number) as [number, number];
  return h * 60 + m;
}

/** The local calendar date at `instant` in `timeZone`. */
function localParts(instant: Date, timeZone: string) {
  const local = new Date(instant.getTime() + zoneOffsetMs(instant, timeZone));
  return { year: local.getUTCFullYear(), month: local.getUTCMonth() + 1, day: local.getUTCDate() };
}

/**
 * The earliest instant at or after `from` inside the window, in `timeZone`. Daylight-saving days
 * are handled by computing each candidate opening from the local wall-clock time.
 */
export function nextOpening(from: Date, window: SendWindow, timeZone: string): Date {
  const start = minutes(window.start);
  const end = minutes(window.end);
  const today = localParts(from, timeZone);
  // Walk local calendar days (not 24-hour steps, which a daylight-saving change would skew).
  for (let dayOffset = 0; dayOffset <= 7; dayOffset++) {
    const date = new Date(Date.UTC(today.year, today.month - 1, today.day + dayOffset));
    if (!window.days.includes(DAYS[(date.getUTCDay() + 6) % 7]!)) continue;
    const local = {
      year: date.getUTCFullYear(),
      month: date.getUTCMonth() + 1,
      day: date.getUTCDate(),
      second: 0,
    };
    const opens = zonedTimeToUtc(
      { ...local, hour: Math.floor(start / 60), minute: start % 60 },
      timeZone,
    );
    const closes = zonedTimeToUtc(
      { ...local, hour: Math.floor(end / 60), minute: end % 60 },
      timeZone,
    );
    if (from < opens) return opens;
    if (from < closes) return from;
  }
  // Unreachable for a window that passed parseSendWindow (it opens at least once a week).
  throw new Error('send window never opens');
}

/**
 * The lateness policy: a message whose time has passed (workers were down) is sent only within
 * `maxLatenessMs` of it; later than that it is EXPIRED as "missed its send time".
 */
export function isTooLate(dueAt: Date, now: Date, maxLatenessMs: number): boolean {
  return now.getTime() - dueAt.getTime() > maxLatenessMs;
}
