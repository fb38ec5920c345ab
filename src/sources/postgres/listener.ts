/**
 * One dedicated connection running `LISTEN <channel>` (a pooled connection would
 * be handed to other queries and lose the subscription). When the connection
 * drops it reconnects with backoff; every (re)connect is reported so the caller
 * can resync, because notifications sent while disconnected are gone.
 */
import pg from "pg";
import type { Backoff } from "./backoff.ts";

export interface ChangeListenerOptions {
  readonly client: pg.ClientConfig;
  /** A plain identifier; it is spliced into the LISTEN statement. */
  readonly channel: string;
  readonly backoff: Backoff;
  readonly onNotification: (payload: string) => void;
  /** Connected and listening, first time or again. */
  readonly onConnected: () => void;
  /** Lost the connection, or failed to get it back; a retry is scheduled. */
  readonly onDisconnected: (err: Error) => void;
}

export class ChangeListener {
  #client: pg.Client | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #stopped = false;

  constructor(private readonly options: ChangeListenerOptions) {
    if (!/^[a-z_][a-z0-9_]*$/.test(options.channel)) throw new Error(`invalid channel name ${options.channel}`);
  }

  get connected(): boolean {
    return this.#client !== null;
  }

  /** Connects once; rejects if that fails (no retry before the first success). */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#connect();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const client = this.#client;
    this.#client = null;
    await client?.end().catch(() => {});
  }

  async #connect(): Promise<void> {
    const client = new pg.Client(this.options.client);
    // Attached before connect(): an unhandled 'error' event would crash the process.
    client.on("error", (err) => this.#lost(client, err));
    client.on("end", () => this.#lost(client, new Error("listener connection closed")));
    client.on("notification", (msg) => {
      if (msg.channel === this.options.channel) this.options.onNotification(msg.payload ?? "");
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${this.options.channel}`);
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    if (this.#stopped) {
      await client.end().catch(() => {});
      return;
    }
    this.#client = client;
    this.options.backoff.reset();
    this.options.onConnected();
  }

  #lost(client: pg.Client, err: Error): void {
    if (this.#client !== client) return; // still connecting, or already handled
    this.#client = null;
    client.end().catch(() => {});
    if (this.#stopped) return;
    this.options.onDisconnected(err);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#stopped || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#connect().catch((err: Error) => {
        if (this.#stopped) return;
        this.options.onDisconnected(err);
        this.#scheduleReconnect();
      });
    }, this.options.backoff.next());
    this.#timer.unref();
  }
}
