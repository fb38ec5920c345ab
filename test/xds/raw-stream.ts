import type * as grpc from "@grpc/grpc-js";

/**
 * A raw bidirectional xDS stream for scripted clients: write request bytes,
 * read decoded responses in order, see the final status.
 */
export function openRawStream<Response>(client: grpc.Client, path: string, decode: (bytes: Buffer) => Response) {
  const call = client.makeBidiStreamRequest<Uint8Array, Buffer>(path, (value) => Buffer.from(value), (bytes) => bytes);
  const responses: Response[] = [];
  const waiters: Array<() => void> = [];
  call.on("data", (bytes: Buffer) => {
    responses.push(decode(bytes));
    waiters.splice(0).forEach((wake) => wake());
  });
  const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  call.on("error", () => {});
  return {
    call,
    responses,
    status,
    /** The count-th response (1-based), once it has arrived; fails after `withinMs`. */
    async next(count: number, withinMs = Infinity): Promise<Response> {
      const deadline = Date.now() + withinMs;
      while (responses.length < count) {
        if (Date.now() > deadline) throw new Error(`only ${responses.length} responses, wanted ${count}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          if (withinMs !== Infinity) setTimeout(resolve, 50);
        });
      }
      return responses[count - 1] as Response;
    },
  };
}
