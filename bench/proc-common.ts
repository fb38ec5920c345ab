/**
 * What the benchmark asks of a server process (Signalbox or the floor) over IPC:
 * resource usage, a forced GC, and CPU profiles of chosen windows.
 */
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { nowMs } from "./wire.ts";

export interface ServerStats {
  readonly at: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /** process.cpuUsage() user + system, in milliseconds: every thread (V8's background GC and compiler threads too). */
  readonly cpuMs: number;
  /** Of cpuMs, the main thread's, in milliseconds (NaN where Linux's schedstat is not available). */
  readonly mainMs: number;
  readonly streams: number;
  /** When the last change reached the push machinery (cache snapshot for Signalbox, the change order for the floor). */
  readonly lastChangeAt: number;
  readonly extra: Record<string, unknown>;
}

export type ToServer =
  | { type: "stats" }
  | { type: "gc" }
  | { type: "profile"; action: "start" }
  | { type: "profile"; action: "stop"; file: string }
  | { type: "stop" };

export function collectStats(streams: number, lastChangeAt: number, extra: Record<string, unknown> = {}): ServerStats {
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  return {
    at: nowMs(),
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    external: memory.external,
    arrayBuffers: memory.arrayBuffers,
    cpuMs: (cpu.user + cpu.system) / 1000,
    mainMs: mainThreadCpuMs(),
    streams,
    lastChangeAt,
    extra,
  };
}

/**
 * The main thread's CPU time: the first field of Linux's per-thread schedstat
 * (nanoseconds on a CPU; the main thread's id is the process id). Node 20 has
 * no per-thread CPU clock, and event-loop utilization counts time the thread
 * waits for a core as busy, which on this 2-core machine shared with the
 * simulated fleet is most of the difference.
 */
function mainThreadCpuMs(): number {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, "utf8").split(" ")[0]) / 1e6;
  } catch {
    return Number.NaN;
  }
}

let session: Session | null = null;

/** Handles the common requests; returns false for a message it does not know. */
export async function handleCommon(message: ToServer, stats: () => ServerStats): Promise<boolean> {
  switch (message.type) {
    case "stats":
      process.send?.({ type: "stats", stats: stats() });
      return true;
    case "gc": {
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      gc?.();
      process.send?.({ type: "gc-done" });
      return true;
    }
    case "profile":
      if (message.action === "start") {
        session = new Session();
        session.connect();
        await session.post("Profiler.enable");
        await session.post("Profiler.setSamplingInterval", { interval: 200 });
        await session.post("Profiler.start");
      } else if (session) {
        const { profile } = await session.post("Profiler.stop");
        await writeFile(message.file, JSON.stringify(profile));
        session.disconnect();
        session = null;
      }
      process.send?.({ type: "profile-done" });
      return true;
    default:
      return false;
  }
}
