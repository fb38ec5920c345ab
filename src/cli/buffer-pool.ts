/**
 * The size of Node's shared Buffer pools in the server process.
 *
 * grpc-js frames every response in a buffer of its own asking,
 * `Buffer.allocUnsafe(size + 5)`. Node serves an allocation under half its pool
 * size from a shared pool (8 KB by default) and gives anything larger an
 * ArrayBuffer of its own. A state-of-the-world EDS response for a sidecar with
 * a dozen upstreams is 4–8 KB, so an endpoint change at 10,000 SotW proxies
 * made 10,000 ArrayBuffers, and their allocation was a quarter of the push's
 * main-thread time. With 16 KB pools they come from shared pools. In the fleet
 * benchmark (N = 10,000, SotW, three runs each) an endpoint change's CPU fell
 * from 470–502 to 368–436 ms and its p99 from 1.0–1.19 to 0.82–0.86 s. Smaller
 * responses (delta, routes) and the first full build did not change.
 *
 * A pool lives as long as any slice of it: the cost is that a long-lived small
 * buffer can keep 16 KB alive rather than 8 KB. Resident memory per proxy in
 * the benchmark did not move (24–25 KB). See docs/benchmarks.md, "A larger
 * Buffer pool".
 */
export const SERVER_BUFFER_POOL_SIZE = 16 * 1024;

/** Sets the pool size for buffers allocated from now on (a pool in use is kept until it is full). */
export function useServerBufferPool(): void {
  Buffer.poolSize = SERVER_BUFFER_POOL_SIZE;
}
