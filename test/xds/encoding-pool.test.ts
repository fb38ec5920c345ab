import { describe, expect, it } from "vitest";
import { encodingBuffer, joinEncoding } from "../../src/xds/encoding-pool.ts";

describe("encoding pool", () => {
  it("carves small buffers from slabs of its own, apart from Node's pool, without overlap", () => {
    const nodePooled = Buffer.allocUnsafe(16);
    const buffers = Array.from({ length: 200 }, (_, i) => encodingBuffer(1 + (i % 90)));
    for (const [i, buffer] of buffers.entries()) {
      expect(buffer.length).toBe(1 + (i % 90));
      expect(buffer.buffer).not.toBe(nodePooled.buffer);
      expect(buffer.buffer.byteLength).toBeGreaterThan(buffer.length); // a slice of a slab
      buffer.fill(i % 256);
    }
    // Each kept what was written into it: no two slices share bytes.
    for (const [i, buffer] of buffers.entries()) expect(buffer.every((byte) => byte === i % 256)).toBe(true);
  });

  it("gives a buffer of half a slab or more an ArrayBuffer of its own", () => {
    const large = encodingBuffer(4096);
    expect(large.buffer.byteLength).toBe(4096);
  });

  it("joins parts in order", () => {
    const joined = joinEncoding([Buffer.from("ab"), new Uint8Array([0x63]), Buffer.from("")], 3);
    expect(joined.toString("latin1")).toBe("abc");
  });
});
