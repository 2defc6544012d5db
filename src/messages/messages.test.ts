import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { describe, expect, it } from 'vitest';
import { normalisePhone } from './phone.js';
import { MessageIdGenerator } from './message-id.js';
import { countSegments } from './segments.js';
import { parseSendTime, zonedTimeToUtc } from './zoned-time.js';

describe('segments', () => {
  it.each([
    ['', 'GSM-7', 0, 1],
    ['a'.repeat(160), 'GSM-7', 160, 1],
    ['a'.repeat(161), 'GSM-7', 161, 2],
    ['a'.repeat(306), 'GSM-7', 306, 2],
    ['a'.repeat(307), 'GSM-7', 307, 3],
    ['€'.repeat(80), 'GSM-7', 160, 1], // extension characters take two septets
    ['€'.repeat(81), 'GSM-7', 162, 2],
    ['ć'.repeat(70), 'UCS-2', 70, 1],
    ['ć'.repeat(71), 'UCS-2', 71, 2],
    ['Hi 😀', 'UCS-2', 5, 1], // an emoji is two UTF-16 units
  ])('%j is %s, %i units, %i segments', (body, encoding, units, segments) => {
    expect(countSegments(body)).toEqual({ encoding, units, segments });
  });
});

describe('phone numbers', () => {
  it('normalises the ways people write Australian mobiles', () => {
    for (const written of [
      '0412 345 678',
      '+61 412 345 678',
      '(04) 1234-5678',
      '61412345678',
      '0412.345.678',
    ]) {
      expect(normalisePhone(written, 'AU'), written).toEqual({ ok: true, e164: '+61412345678' });
    }
    expect(normalisePhone('021 123 4567', 'NZ')).toEqual({ ok: true, e164: '+64211234567' });
    expect(normalisePhone('+64 21 123 4567', 'AU')).toEqual({ ok: true, e164: '+64211234567' });
  });

  it('refuses invalid numbers and numbers that cannot take an SMS, saying why', () => {
    expect(normalisePhone('04123', 'AU')).toEqual({
      ok: false,
      reason: '"04123" is not a valid phone number',
    });
    expect(normalisePhone('(02) 9876 5432', 'AU')).toEqual({
      ok: false,
      reason: '"(02) 9876 5432" cannot receive SMS (fixed line number)',
    });
    expect(normalisePhone('  ', 'AU')).toEqual({ ok: false, reason: 'phone number is empty' });
  });

  it('agrees with a full libphonenumber parse on random Australian numbers (the fast path is only a shortcut)', () => {
    for (let i = 0; i < 5000; i++) {
      const written = `0${Math.floor(Math.random() * 1e9)
        .toString()
        .padStart(9, '0')}`;
      const full = parsePhoneNumberFromString(written, 'AU');
      const type = full?.getType();
      const accepted =
        !!full?.isValid() &&
        !['FIXED_LINE', 'PREMIUM_RATE', 'TOLL_FREE', 'SHARED_COST'].includes(type as string);
      const ours = normalisePhone(written, 'AU');
      expect(ours.ok, written).toBe(accepted);
      if (ours.ok) expect(ours.e164).toBe(full!.number);
    }
  });
});

describe('send times in time zones', () => {
  it('reads a local time in the zone, across daylight saving', () => {
    expect(parseSendTime('2026-12-01 09:30', 'Australia/Sydney')?.toISOString()).toBe(
      '2026-11-30T22:30:00.000Z',
    ); // AEDT +11
    expect(parseSendTime('2026-06-01 09:30', 'Australia/Sydney')?.toISOString()).toBe(
      '2026-05-31T23:30:00.000Z',
    ); // AEST +10
    expect(parseSendTime('2026-12-01T09:30:00+11:00', 'UTC')?.toISOString()).toBe(
      '2026-11-30T22:30:00.000Z',
    );
    expect(parseSendTime('2026-02-31 09:30', 'UTC')).toBeUndefined();
    expect(parseSendTime('next tuesday', 'UTC')).toBeUndefined();
  });

  it('puts a skipped time just after the spring-forward jump and a repeated time at its first occurrence', () => {
    // Sydney: 2026-10-04 02:00 → 03:00; 2026-04-05 03:00 → 02:00.
    const wall = { minute: 30, second: 0 };
    expect(
      zonedTimeToUtc(
        { year: 2026, month: 10, day: 4, hour: 2, ...wall },
        'Australia/Sydney',
      ).toISOString(),
    ).toBe('2026-10-03T16:30:00.000Z');
    expect(
      zonedTimeToUtc(
        { year: 2026, month: 4, day: 5, hour: 2, ...wall },
        'Australia/Sydney',
      ).toISOString(),
    ).toBe('2026-04-04T15:30:00.000Z');
  });
});

describe('message ids', () => {
  it('are UUIDv7 with the time in front, increasing even within a millisecond', () => {
    let now = Date.UTC(2026, 11, 1);
    const ids = new MessageIdGenerator(() => now);
    const made = Array.from({ length: 10_000 }, () => ids.next()); // > 4096: borrows the next ms
    for (const id of made) {
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
    expect(parseInt(made[0]!.replace('-', '').slice(0, 12), 16)).toBe(now);
    expect([...made].sort()).toEqual(made);
    expect(new Set(made).size).toBe(made.length);
    now -= 5; // the clock steps back: still increasing
    const later = ids.next();
    expect(later > made.at(-1)!).toBe(true);
  });
});
