/**
 * Wall-clock times in IANA time zones without a date library: Intl knows every zone's offsets,
 * including daylight-saving changes.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, format);
  }
  return format;
}

/** True for a time zone name Intl knows (e.g. "Australia/Sydney", "UTC"). */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The zone's offset from UTC at `instant`, in milliseconds (Sydney in January: +11 h). */
export function zoneOffsetMs(instant: Date, timeZone: string): number {
  const parts: Record<string, number> = {};
  for (const part of formatter(timeZone).formatToParts(instant)) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  const asUtc = Date.UTC(
    parts.year!,
    parts.month! - 1,
    parts.day!,
    parts.hour!,
    parts.minute!,
    parts.second!,
  );
  return asUtc - Math.floor(instant.getTime() / 1000) * 1000;
}

/**
 * The instant at which the clocks in `timeZone` show this wall-clock time. A time skipped by a
 * daylight-saving jump (02:30 on a spring-forward night) is read with the offset before the jump,
 * i.e. it lands just after the jump; a repeated time (autumn) takes its first occurrence.
 */
export function zonedTimeToUtc(
  wall: { year: number; month: number; day: number; hour: number; minute: number; second: number },
  timeZone: string,
): Date {
  const asUtc = Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second);
  // The offsets in force a day either side; a zone changes offset at most once in between.
  const before = zoneOffsetMs(new Date(asUtc - 86_400_000), timeZone);
  const after = zoneOffsetMs(new Date(asUtc + 86_400_000), timeZone);
  const readings = [asUtc - before, asUtc - after].filter(
    (instant) => zoneOffsetMs(new Date(instant), timeZone) === asUtc - instant,
  );
  if (readings.length > 0) return new Date(Math.min(...readings));
  // The wall time was skipped: read it with the offset before the jump, landing just after it.
  return new Date(asUtc - before);
}

const LOCAL_TIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$/;
const WITH_OFFSET =
  /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/i;

/**
 * A send time as written in a list: ISO 8601 with an offset or Z ("2026-12-01T09:30:00+11:00"),
 * or a local time ("2026-12-01 09:30") read in `timeZone`. Undefined when it is neither.
 */
export function parseSendTime(text: string, timeZone: string): Date | undefined {
  const value = text.trim();
  if (WITH_OFFSET.test(value)) {
    const date = new Date(value.replace(' ', 'T'));
    return Number.isNaN(date.getTime()) ? undefined : date;
  }
  const match = LOCAL_TIME.exec(value);
  if (!match) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1).map((v) => Number(v ?? 0)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59)
    return undefined;
  const date = zonedTimeToUtc({ year, month, day, hour, minute, second }, timeZone);
  // Reject dates that do not exist (31 February) rather than roll them over.
  const check = new Date(date.getTime() + zoneOffsetMs(date, timeZone));
  return check.getUTCDate() === day && check.getUTCMonth() + 1 === month ? date : undefined;
}
