// SMS segment counting (3GPP TS 23.038). A message is GSM-7 if every character is in the GSM 03.38
// basic set or its extension table (extension characters take two septets); otherwise it is UCS-2.
// Single-part limits: 160 septets / 70 UCS-2 units. Multipart messages lose room to the header:
// 153 septets / 67 units per segment.

const GSM_BASIC =
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?' +
  '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM_EXTENSION = '^{}\\[~]|€\f';

/** Septets per UTF-16 code unit: 1 (basic set), 2 (extension table) or 0 (not GSM-7). Every GSM
 * character is one code unit, so a surrogate (half an emoji, say) is 0 as it should be. */
const SEPTETS = new Uint8Array(0x10000);
for (const ch of GSM_BASIC) SEPTETS[ch.charCodeAt(0)] = 1;
for (const ch of GSM_EXTENSION) SEPTETS[ch.charCodeAt(0)] = 2;

/** Text length as the providers' JSON schemas count it (`maxLength`: Unicode code points). */
export function textLength(text: string): number {
  return [...text].length;
}

export type SmsEncoding = 'GSM-7' | 'UCS-2';

export interface SegmentInfo {
  encoding: SmsEncoding;
  /** Septets (GSM-7) or UTF-16 code units (UCS-2). */
  units: number;
  segments: number;
}

export function countSegments(body: string): SegmentInfo {
  const septets = gsmSeptets(body);
  if (septets >= 0) return { encoding: 'GSM-7', units: septets, segments: gsmSegments(septets) };
  const units = body.length; // UTF-16 code units; a character outside the BMP takes two
  return { encoding: 'UCS-2', units, segments: ucs2Segments(units) };
}

/**
 * Septets `text` takes in GSM-7, or -1 when a character of it is not in GSM-7 (the message is then
 * UCS-2). A table lookup per code unit: an import counts a million messages.
 */
export function gsmSeptets(text: string): number {
  let septets = 0;
  for (let i = 0; i < text.length; i++) {
    const n = SEPTETS[text.charCodeAt(i)]!;
    if (n === 0) return -1;
    septets += n;
  }
  return septets;
}

export function gsmSegments(septets: number): number {
  return septets <= 160 ? 1 : Math.ceil(septets / 153);
}

/** `units`: UTF-16 code units. */
export function ucs2Segments(units: number): number {
  return units <= 70 ? 1 : Math.ceil(units / 67);
}
