import { afterEach, describe, expect, it } from "vitest";
import { SERVER_BUFFER_POOL_SIZE, useServerBufferPool } from "../../src/cli/buffer-pool.ts";

// Buffer.poolSize is the process's: put it back for the other tests of this worker.
const defaultPoolSize = Buffer.poolSize;
afterEach(() => {
  Buffer.poolSize = defaultPoolSize;
});

/** Whether `buffer` is a slice of a shared pool rather than an ArrayBuffer of its own. */
const pooled = (buffer: Buffer) => buffer.buffer.byteLength > buffer.length;

describe("the server's Buffer pool", () => {
  it("serves a 5 KB allocation, the size of grpc-js's frame for a SotW EDS response, from a shared pool", () => {
    const frame = 5 * 1024;
    expect(pooled(Buffer.allocUnsafe(frame))).toBe(frame < defaultPoolSize >>> 1);
    useServerBufferPool();
    expect(Buffer.poolSize).toBe(SERVER_BUFFER_POOL_SIZE);
    for (let i = 0; i < 8; i++) expect(pooled(Buffer.allocUnsafe(frame))).toBe(true);
    // Above half the pool an allocation still gets an ArrayBuffer of its own.
    expect(pooled(Buffer.allocUnsafe(SERVER_BUFFER_POOL_SIZE / 2))).toBe(false);
  });
});
