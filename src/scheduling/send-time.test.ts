import { describe, expect, it } from 'vitest';
import { UserError } from '../errors.js';
import { decideSendTime, NATIVE_LIMIT_MARGIN_MS, type TimingRules } from './send-time.js';
import { formatSendWindow, parseSendWindowText } from './send-window.js';

const at = (iso: string) => new Date(iso);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
// Mon–Sat 09:00–20:00 in Sydney (AEDT, +11, in December).
const rules: TimingRules = {
  window: parseSendWindowText('mon-sat 09:00-20:00'),
  timeZone: 'Australia/Sydney',
  maxLatenessMs: HOUR,
};
const anyTime: TimingRules = { ...rules, window: null };
const optus = { maxAheadMs: 60 * DAY, cancellable: false };

describe('when a message may go', () => {
  it('sends a message without a time of its own at once inside the window', () => {
    // Tue 2026-12-01 10:00 AEDT
    expect(
      decideSendTime({ dueAt: null, timezone: null }, rules, at('2026-11-30T23:00:00Z')),
    ).toEqual({ action: 'send' });
  });

  it('holds a message outside the window until it opens, in the recipient time zone', () => {
    // Sun 2026-12-06 10:00 AEDT: closed on Sundays → Mon 09:00 AEDT.
    expect(
      decideSendTime({ dueAt: null, timezone: null }, rules, at('2026-12-05T23:00:00Z')),
    ).toEqual({ action: 'wait', until: at('2026-12-06T22:00:00Z') });
    // Tue 2026-12-01 06:30 in Perth (+8) is 09:30 in Sydney: open in Sydney, not yet in Perth.
    expect(
      decideSendTime(
        { dueAt: null, timezone: 'Australia/Perth' },
        rules,
        at('2026-11-30T22:30:00Z'),
      ),
    ).toEqual({ action: 'wait', until: at('2026-12-01T01:00:00Z') });
  });

  it('never sends before its own time, and moves a time outside the window to the opening', () => {
    const now = at('2026-11-30T23:00:00Z'); // Tue 10:00 AEDT
    expect(
      decideSendTime({ dueAt: at('2026-11-30T23:00:00.001Z'), timezone: null }, anyTime, now),
    ).toEqual({ action: 'wait', until: at('2026-11-30T23:00:00.001Z') });
    // Due Tue 22:00 AEDT → Wed 09:00 AEDT.
    expect(
      decideSendTime({ dueAt: at('2026-12-01T11:00:00Z'), timezone: null }, rules, now),
    ).toEqual({ action: 'wait', until: at('2026-12-01T22:00:00Z') });
  });

  it('sends a late message within the maximum lateness and expires one beyond it', () => {
    const now = at('2026-12-01T01:00:00Z'); // Tue 12:00 AEDT
    expect(
      decideSendTime({ dueAt: at('2026-12-01T00:00:01Z'), timezone: null }, rules, now),
    ).toEqual({ action: 'send' });
    const late = decideSendTime({ dueAt: at('2026-11-30T23:59:59Z'), timezone: null }, rules, now);
    expect(late).toMatchObject({ action: 'expire', code: 'MISSED_SEND_TIME' });
    expect(late.action === 'expire' && late.reason).toMatch(/^missed its send time: due at /);
  });

  it('counts lateness from the window opening a time was moved to, not the time itself', () => {
    // Due Sat 21:00 AEDT → meant for Mon 09:00; workers were down until Mon 09:30: 30 min late.
    expect(
      decideSendTime(
        { dueAt: at('2026-12-05T10:00:00Z'), timezone: null },
        rules,
        at('2026-12-06T22:30:00Z'),
      ),
    ).toEqual({ action: 'send' });
  });

  it('expires at once a late message whose window closed meanwhile, rather than wait for it', () => {
    // Due Tue 19:55 AEDT, workers back at 20:10: the next opening (Wed 09:00) is 13 h late.
    const decision = decideSendTime(
      { dueAt: at('2026-12-01T08:55:00Z'), timezone: null },
      rules,
      at('2026-12-01T09:10:00Z'),
    );
    expect(decision).toMatchObject({ action: 'expire', code: 'MISSED_SEND_TIME' });
    expect(decision.action === 'expire' && decision.reason).toContain('next opens at');
  });

  it('hands a message to a provider that schedules natively within its limit, not beyond', () => {
    const now = at('2026-12-01T00:00:00Z');
    const in90Days = new Date(now.getTime() + 90 * DAY);
    const in30Days = new Date(now.getTime() + 30 * DAY);
    const atLimit = new Date(now.getTime() + 60 * DAY - NATIVE_LIMIT_MARGIN_MS);
    const timing = (dueAt: Date) => ({ dueAt, timezone: null });
    expect(decideSendTime(timing(in90Days), anyTime, now, optus)).toEqual({
      action: 'wait',
      until: in90Days,
    });
    expect(decideSendTime(timing(in30Days), anyTime, now, optus)).toEqual({
      action: 'send',
      sendAt: in30Days,
    });
    expect(decideSendTime(timing(atLimit), anyTime, now, optus)).toEqual({
      action: 'send',
      sendAt: atLimit,
    });
    const justBeyond = new Date(atLimit.getTime() + 1);
    expect(decideSendTime(timing(justBeyond), anyTime, now, optus).action).toBe('wait');
    // Too close to hand over safely: Herald's own delayed job sends it.
    const soon = new Date(now.getTime() + 30_000);
    expect(decideSendTime(timing(soon), anyTime, now, optus)).toEqual({
      action: 'wait',
      until: soon,
    });
  });

  it('hands over the time the window allows, never one inside quiet hours', () => {
    const now = at('2026-12-01T00:00:00Z');
    // Due Sun 2026-12-13 10:00 AEDT (closed) → handed over for Mon 09:00 AEDT.
    expect(
      decideSendTime({ dueAt: at('2026-12-12T23:00:00Z'), timezone: null }, rules, now, optus),
    ).toEqual({ action: 'send', sendAt: at('2026-12-13T22:00:00Z') });
  });
});

describe('send windows written as text', () => {
  it('reads days, ranges and hours', () => {
    expect(parseSendWindowText('mon-sat 09:00-20:00')).toEqual({
      days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat'],
      start: '09:00',
      end: '20:00',
    });
    expect(formatSendWindow(parseSendWindowText('fri-mon,wed 8:30-17:00'))).toBe(
      'mon,wed,fri,sat,sun 08:30-17:00',
    );
    expect(parseSendWindowText('daily 09:00-21:00').days).toHaveLength(7);
  });

  it('refuses what it cannot read, with a stable code', () => {
    for (const bad of ['weekdays 09:00-17:00', 'mon-fri', 'mon-fri 17:00-09:00', 'mon 9-5']) {
      const error = (() => {
        try {
          parseSendWindowText(bad);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(UserError);
      expect((error as UserError).code).toBe('SEND_WINDOW_INVALID');
    }
  });
});
