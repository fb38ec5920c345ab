/**
 * The size of Node's shared Buffer pools in the server process.
 *
 * grpc-js frames every response in a buffer of its own asking,
 * `Buffer.allocUnsafe(size + 5)`. Node serves an allocation under half its pool
 * size from a shared pool (8 KB by default) and gives anything larger an
 * ArrayBuffer of its own. A state-of-the-world EDS response for a sidecar with
 * a dozen upstreams is 4–8 KB, so an endpoint change at 10,000 SotW proxies
 * made 10,000 ArrayBuffers, and their allocation was a quarter of the push's
 * main-thread time. With 16 KB pools they come from shared pools: in the fleet
 * benchmark (N = 10,000, SotW) an endpoint change's CPU fell to the floor's
 * and its p99 from 0.97–1.19 s to 0.79–0.86 s.
 *
 * A pool lives as long as any slice of it, so what the cache keeps for a long
 * time is not taken from these pools but from slabs of its own
 * (src/xds/encoding-pool.ts). Sharing them, each kept route configuration held
 * a 16 KB pool of dropped frames, and delta rule changes got about 50 ms
 * dearer (docs/benchmarks.md, "A larger Buffer pool").
 */
export const SERVER_BUFFER_POOL_SIZE = 16 * 1024;

/** Sets the pool size for buffers allocated from now on (a pool in use is kept until it is full). */
export function useServerBufferPool(): void {
  Buffer.poolSize = SERVER_BUFFER_POOL_SIZE;
}
