/**
 * Buffers for what the cache keeps: encoded resources and their parts.
 * Carved from 8 KB slabs of their own, as Node's Buffer
 * pool carves its pool, but apart from it.
 *
 * A slab (like a Node pool) lives as long as any slice of it. Encodings live
 * as long as the resources they hold, across many changes, while most of what
 * else is taken from Node's pool, grpc-js's response frames above all, is
 * dropped once written. Sharing pools, one kept encoding holds a whole pool
 * of dropped frames alive. Kept apart, Node's pool can be sized for the
 * frames (src/cli/buffer-pool.ts) without that.
 *
 * Small buffers from one slab, and not each its own: tens of thousands of
 * retained ArrayBuffers cost the collector more than the copies into a slab
 * (docs/benchmarks.md, "Fewer buffers and look-ups in the full build").
 */
const SLAB_SIZE = 8 * 1024;

let slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
let offset = 0;

/** An uninitialized buffer of `size` bytes, for an encoding the cache keeps. */
export function encodingBuffer(size: number): Buffer {
  if (size >= SLAB_SIZE >>> 1) return Buffer.allocUnsafeSlow(size);
  if (size > SLAB_SIZE - offset) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    offset = 0;
  }
  const out = slab.subarray(offset, offset + size);
  // 8-byte aligned, as Node aligns its pool.
  offset = (offset + size + 7) & ~7;
  return out;
}

/** `parts` joined, in an encoding buffer. */
export function joinEncoding(parts: readonly Uint8Array[], size: number): Buffer {
  const out = encodingBuffer(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
