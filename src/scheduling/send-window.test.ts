import { describe, expect, it } from 'vitest';
import { UserError } from '../errors.js';
import { isTooLate, nextOpening, parseSendWindow } from './send-window.js';

const weekdays = parseSendWindow({
  days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
  start: '09:00',
  end: '20:00',
});
const sydney = 'Australia/Sydney';
const at = (iso: string) => new Date(iso);

describe('send windows', () => {
  it('lets a time inside the window through unchanged', () => {
    // Tue 2026-12-01 10:00 AEDT = 2026-11-30T23:00Z
    expect(nextOpening(at('2026-11-30T23:00:00Z'), weekdays, sydney).toISOString()).toBe(
      '2026-11-30T23:00:00.000Z',
    );
  });

  it('moves a time before opening, after closing, or on a closed day to the next opening', () => {
    // Tue 07:00 AEDT → Tue 09:00 AEDT (22:00Z the day before)
    expect(nextOpening(at('2026-11-30T20:00:00Z'), weekdays, sydney).toISOString()).toBe(
      '2026-11-30T22:00:00.000Z',
    );
    // Tue 21:00 AEDT → Wed 09:00 AEDT
    expect(nextOpening(at('2026-12-01T10:00:00Z'), weekdays, sydney).toISOString()).toBe(
      '2026-12-01T22:00:00.000Z',
    );
    // Sat 20:30 AEDT → (Sunday closed) Mon 09:00 AEDT
    expect(nextOpening(at('2026-12-05T09:30:00Z'), weekdays, sydney).toISOString()).toBe(
      '2026-12-06T22:00:00.000Z',
    );
  });

  it('opens at 09:00 local on either side of a daylight-saving change', () => {
    // Sydney leaves daylight saving on Sun 2026-04-05. Sat 21:00 AEDT → Mon 09:00 AEST (+10).
    expect(nextOpening(at('2026-04-04T10:00:00Z'), weekdays, sydney).toISOString()).toBe(
      '2026-04-05T23:00:00.000Z',
    );
    // It starts again on Sun 2026-10-04. Sat 21:00 AEST → Mon 09:00 AEDT (+11).
    expect(nextOpening(at('2026-10-03T11:00:00Z'), weekdays, sydney).toISOString()).toBe(
      '2026-10-04T22:00:00.000Z',
    );
  });

  it('does not skip the day after clocks spring forward', () => {
    const everyDay = parseSendWindow({
      days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'],
      start: '09:00',
      end: '20:00',
    });
    // Sat 2026-10-03 23:30 AEST; Sunday 04 is 23 hours long. Next opening: Sun 09:00 AEDT.
    expect(nextOpening(at('2026-10-03T13:30:00Z'), everyDay, sydney).toISOString()).toBe(
      '2026-10-03T22:00:00.000Z',
    );
  });

  it('uses the recipient time zone', () => {
    // 08:30 in Perth (+8) is 11:30 in Sydney: open there, not yet in Perth.
    expect(nextOpening(at('2026-12-01T00:30:00Z'), weekdays, 'Australia/Perth').toISOString()).toBe(
      '2026-12-01T01:00:00.000Z',
    );
  });

  it('refuses a window that never opens, with a stable code', () => {
    for (const bad of [
      { days: [], start: '09:00', end: '17:00' },
      { days: ['mon'], start: '17:00', end: '09:00' },
      { days: ['mon'], start: '09:00', end: '09:00' },
      { days: ['funday'], start: '09:00', end: '17:00' },
      { days: ['mon'], start: '9am', end: '17:00' },
    ]) {
      expect(() => parseSendWindow(bad)).toThrow(UserError);
      try {
        parseSendWindow(bad);
      } catch (error) {
        expect((error as UserError).code).toBe('SEND_WINDOW_INVALID');
      }
    }
  });
});

describe('lateness', () => {
  it('sends within the allowed lateness and expires beyond it', () => {
    const due = at('2026-12-01T00:00:00Z');
    expect(isTooLate(due, at('2026-12-01T00:59:59Z'), 3_600_000)).toBe(false);
    expect(isTooLate(due, at('2026-12-01T01:00:01Z'), 3_600_000)).toBe(true);
    expect(isTooLate(due, at('2026-12-04T00:00:00Z'), 3_600_000)).toBe(true);
  });
});
