/** Protobuf varints and length-delimited field headers for the hand-sized writers (endpoint-binary.ts, encoding.ts); unsigned 32-bit values only. */

/** Bytes of `value` as a varint. */
export function varintSize(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : value < 0x10000000 ? 4 : 5;
}

/** Writes `value` as a varint at `at`; returns the offset after it. */
export function putVarint(out: Uint8Array, at: number, value: number): number {
  let rest = value >>> 0;
  while (rest > 0x7f) {
    out[at++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  out[at++] = rest;
  return at;
}

/** A length-delimited field's size with a one-byte tag. */
export function framedSize(length: number): number {
  return 1 + varintSize(length) + length;
}

/** Writes a one-byte tag and a length at `at`; returns where the field's bytes go. */
export function putFrame(out: Uint8Array, at: number, tag: number, length: number): number {
  out[at] = tag;
  return putVarint(out, at + 1, length);
}

/** Writes a length-delimited field holding `bytes`, with a one-byte tag, at `at`; returns the offset after it. */
export function putFramed(out: Uint8Array, at: number, tag: number, bytes: Uint8Array): number {
  const start = putFrame(out, at, tag, bytes.length);
  out.set(bytes, start);
  return start + bytes.length;
}

/** A one-byte tag and a length, as a field header of its own (to concatenate before the field's bytes). */
export function frameHeader(tag: number, length: number): Uint8Array {
  const header = new Uint8Array(1 + varintSize(length));
  putFrame(header, 0, tag, length);
  return header;
}
