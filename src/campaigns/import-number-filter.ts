/**
 * The numbers an import has seen, as a Bloom filter of fixed size (4 MiB): "no" is certain,
 * "maybe" is checked against the database. An import asks it about each number so that only the
 * few that may repeat an earlier batch are looked up, while memory stays the same whatever the
 * file's size. False "maybe"s: about 1 in 6,000 after 1,000,000 numbers, 1 in 4 after 10,000,000
 * (each costs one index lookup).
 */
export class NumberFilter {
  private static readonly BITS = 2 ** 25;
  private static readonly PROBES = 4;
  private readonly words = new Uint32Array(NumberFilter.BITS / 32);

  /** Adds the number; true if it may have been added before, false if it certainly was not. */
  add(phone: string): boolean {
    const [first, step] = hashes(phone);
    let h = first;
    let seen = true;
    for (let k = 0; k < NumberFilter.PROBES; k++) {
      const bit = h & (NumberFilter.BITS - 1);
      const mask = 1 << (bit & 31);
      if ((this.words[bit >>> 5]! & mask) === 0) {
        seen = false;
        this.words[bit >>> 5]! |= mask;
      }
      h = (h + step) >>> 0;
    }
    return seen;
  }
}

/** Two independent 32-bit hashes (FNV-1a, and a multiplicative one), for double hashing. */
function hashes(text: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  a ^= a >>> 16;
  a = Math.imul(a, 0x85ebca6b);
  a ^= a >>> 13;
  return [a >>> 0, (b | 1) >>> 0];
}
