import type { MessageStatus } from '../generated/prisma/enums.js';

/** Mirrors message_status_rank() in the migrations: a status only moves to a higher rank. */
export function statusRank(status: MessageStatus): number {
  switch (status) {
    case 'PENDING':
      return 0;
    case 'QUEUED':
      return 1;
    case 'SENDING':
      return 2;
    case 'UNKNOWN':
      return 3;
    case 'SCHEDULED':
      return 4;
    case 'SENT':
      return 5;
    default:
      return 6;
  }
}

/** Statuses after which Herald will not send the message. */
export const FINAL_STATUSES: readonly MessageStatus[] = [
  'DELIVERED',
  'FAILED',
  'EXPIRED',
  'REJECTED',
  'UNDELIVERABLE',
  'SUPPRESSED',
  'CANCELLED',
];

/** Final statuses that count as a failure in reports. */
export const FAILURE_STATUSES: readonly MessageStatus[] = [
  'FAILED',
  'EXPIRED',
  'REJECTED',
  'UNDELIVERABLE',
];

export const ALL_STATUSES: readonly MessageStatus[] = [
  'PENDING',
  'QUEUED',
  'SENDING',
  'UNKNOWN',
  'SCHEDULED',
  'SENT',
  ...FINAL_STATUSES,
];
