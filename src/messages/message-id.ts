import { randomFillSync } from 'node:crypto';

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const RANDOM_POOL_BYTES = 8 * 1024;

/**
 * Message ids made in the importer instead of by the column default `uuid_v7()`: the same UUIDv7
 * layout (RFC 9562: a millisecond Unix timestamp, version 7, variant 10, random bits), which costs
 * Postgres about 3 µs a row as a SQL function and almost nothing here. Ids from one generator only
 * increase (RFC 9562 §6.2 method 1: a 12-bit counter within the millisecond, borrowing the next
 * millisecond when it runs out), so a list's rows keep their file order in every index on id.
 */
export class MessageIdGenerator {
  private millis = -1;
  private counter = 0;
  private prefix = '';
  private readonly pool = Buffer.alloc(RANDOM_POOL_BYTES);
  private offset = RANDOM_POOL_BYTES;

  constructor(private readonly now: () => number = Date.now) {}

  next(): string {
    const now = this.now();
    if (now > this.millis) {
      this.millis = now;
      this.counter = 0;
      this.prefix = '';
    } else if (++this.counter > 0xfff) {
      this.millis++;
      this.counter = 0;
      this.prefix = '';
    }
    if (!this.prefix) {
      const time = this.millis.toString(16).padStart(12, '0');
      this.prefix = `${time.slice(0, 8)}-${time.slice(8)}-7`;
    }
    if (this.offset + 8 > RANDOM_POOL_BYTES) {
      randomFillSync(this.pool);
      this.offset = 0;
    }
    const r = this.pool;
    const o = this.offset;
    this.offset += 8;
    const counter = this.counter;
    return (
      this.prefix +
      HEX[counter >> 8]![1]! +
      HEX[counter & 0xff]! +
      '-' +
      HEX[(r[o]! & 0x3f) | 0x80]! +
      HEX[r[o + 1]!]! +
      '-' +
      HEX[r[o + 2]!]! +
      HEX[r[o + 3]!]! +
      HEX[r[o + 4]!]! +
      HEX[r[o + 5]!]! +
      HEX[r[o + 6]!]! +
      HEX[r[o + 7]!]!
    );
  }
}
