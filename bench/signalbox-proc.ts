/**
 * Signalbox as the benchmark runs it: its own process, PostgreSQL source (LISTEN/
 * NOTIFY), the production gate and push pipeline, logs at warn. Forked by
 * bench/fleet.ts; answers the IPC requests of proc-common.ts.
 */
import { pino } from "pino";
import { startSignalbox, type RunningSignalbox } from "../src/app.ts";
import type { MeshSnapshot } from "../src/model/snapshot.ts";
import { PostgresStore } from "../src/sources/postgres/index.ts";
import { resourceGate } from "../src/xds/validation-gate.ts";
import { asServerProcess } from "./cli.ts";
import { collectStats, handleCommon, type ToServer } from "./proc-common.ts";
import { nowMs } from "./wire.ts";

type Message = ToServer | { type: "start"; databaseUrl: string; debounceMs: number; maxDelayMs: number; pushBatchSize?: number; pushSliceMs?: number };

asServerProcess();

let signalbox: RunningSignalbox | null = null;
let lastChangeAt = 0;
let translateCpuMs = 0;

process.on("message", (message: Message) => {
  void (async () => {
    if (message.type === "start") {
      const logger = pino({ level: process.env.SIGNALBOX_BENCH_LOG ?? "warn" });
      const store = new PostgresStore({ connectionString: message.databaseUrl, logger });
      signalbox = await startSignalbox({
        sources: { registries: [store.registry], mergeRegistries: (states) => states[0] ?? { services: new Map() }, rules: store.rules },
        gate: resourceGate(),
        logger,
        xdsHost: "127.0.0.1",
        xdsPort: 0,
        adminHost: "127.0.0.1",
        adminPort: 0,
        debounceMs: message.debounceMs,
        maxDelayMs: message.maxDelayMs,
        ...(message.pushBatchSize ? { pushBatchSize: message.pushBatchSize } : {}),
        ...(message.pushSliceMs ? { pushSliceMs: message.pushSliceMs } : {}),
      });
      // Instrumentation only: when a new snapshot reaches the cache (the push
      // starts), and the CPU the cache spends on it (translation, encoding,
      // validation; the floor has none of this: it precomputed its responses).
      const cache = signalbox.cache;
      const setSnapshot = cache.setSnapshot.bind(cache);
      cache.setSnapshot = (snapshot: MeshSnapshot) => {
        lastChangeAt = nowMs();
        const before = process.cpuUsage();
        setSnapshot(snapshot);
        const spent = process.cpuUsage(before);
        translateCpuMs += (spent.user + spent.system) / 1000;
      };
      process.send?.({ type: "listening", port: signalbox.xdsPort });
      return;
    }
    if (message.type === "stop") {
      await signalbox?.stop();
      process.exit(0);
    }
    await handleCommon(message, () =>
      collectStats(signalbox?.xds.streamCount ?? 0, lastChangeAt, {
        cache: signalbox?.cache.stats(),
        views: signalbox?.cache.viewCount,
        translateCpuMs,
      }),
    );
  })().catch((error: Error) => {
    process.send?.({ type: "error", message: error.stack ?? error.message });
  });
});
process.on("disconnect", () => process.exit(0));
process.send?.({ type: "alive" });
