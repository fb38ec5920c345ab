import { spawn } from "node:child_process";

/**
 * The V8 flags `signalbox serve` runs with.
 *
 * A larger young generation: translation and pushes allocate in bursts (a full
 * build of a 5,000-service mesh allocates about 400 MB, a third of which it
 * keeps), and V8's default semi-space of at most 16 MB turns each burst into
 * hundreds of scavenges that copy what survives. At 64 MB the first build of
 * that mesh takes 0.15–0.2 s less, and the fleet benchmark's CPU per change
 * fell by 10–40 % (docs/benchmarks.md). The young generation grows to this size
 * only under such bursts: an idle or small control plane stays as small as
 * before; at most it costs about 128 MB more resident memory.
 *
 * No allocation-site pretenuring: V8 learns which allocation sites produce
 * objects that survive and then allocates their objects straight in the old
 * generation. A full build keeps about a third of what it allocates, spread
 * over the same sites as its garbage, and with pretenuring on, the first full
 * build of a 5,000-service mesh took 60–90 ms longer (warm) than with it off
 * (docs/benchmarks.md, "Compiled create").
 *
 * A fixed old-generation growth factor of 2: V8 starts a full (incremental)
 * marking whenever the room left below its old-generation limit is smaller than
 * the young generation, and with 64 MB semi-spaces its own growth factor (about
 * 1.5 at a 150 MB heap) leaves less room than that right after every full
 * collection. In the fleet benchmark (10,000 proxies) that started a marking of
 * the whole heap, about 240 ms of CPU, in every endpoint change; with a factor
 * of 2 it runs in fewer than half of them (docs/benchmarks.md, "Heap growth").
 * The heap may grow to twice what is live before it is collected.
 *
 * V8 reads heap sizes when the process starts, so they cannot be set from
 * code: `serve` relaunches Node with them (relaunchWithServerFlags) unless
 * they were given already (on the command line or in NODE_OPTIONS).
 */
export const SERVER_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=64", "--no-allocation-site-pretenuring", "--heap-growing-percent=100"];

/** Set in the relaunched process, so it never relaunches again. */
const RELAUNCHED = "SIGNALBOX_RELAUNCHED";

/** The flags of SERVER_NODE_FLAGS that neither `execArgv` nor `nodeOptions` sets (by name, whatever the value). */
export function missingServerFlags(execArgv: readonly string[], nodeOptions: string): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].map(flagName);
  return SERVER_NODE_FLAGS.filter((flag) => !given.includes(flagName(flag)));
}

/**
 * `--max-semi-space-size=64` -> `--max-semi-space-size`; V8 accepts `_` for
 * `-` in names, and a boolean flag is the same flag with or without `--no-`.
 */
function flagName(flag: string): string {
  return flag.split("=")[0]!.replaceAll("_", "-").replace(/^--no-/, "--");
}

/**
 * For `serve` without the server flags: runs the same command in a child Node
 * with them, forwards termination signals to it, and exits as it exits.
 * Returns false (and does nothing) when this process should run the command
 * itself. The child gets an IPC channel so that it stops when this process
 * dies without forwarding (SIGKILL): see stopWhenParentDies.
 */
export function relaunchWithServerFlags(argv: readonly string[]): boolean {
  if (argv[2] !== "serve" || process.env[RELAUNCHED] === "1") return false;
  const missing = missingServerFlags(process.execArgv, process.env.NODE_OPTIONS ?? "");
  if (missing.length === 0) return false;
  const child = spawn(process.execPath, [...missing, ...process.execArgv, ...argv.slice(1)], {
    stdio: ["inherit", "inherit", "inherit", "ipc"],
    env: { ...process.env, [RELAUNCHED]: "1" },
  });
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  for (const signal of signals) process.on(signal, () => child.kill(signal));
  child.on("error", (error) => {
    console.error(`signalbox: could not relaunch Node with ${missing.join(" ")}: ${error.message}`);
    process.exit(1);
  });
  child.on("exit", (code, signal) => {
    if (signal === null) process.exit(code ?? 1);
    // Die of the same signal, so a supervisor sees what the server saw.
    for (const each of signals) process.removeAllListeners(each);
    process.kill(process.pid, signal);
  });
  return true;
}

/**
 * In a relaunched server: stop (as on SIGTERM) when the launching process
 * goes away without saying so, so a killed launcher leaves no server behind.
 */
export function stopWhenParentDies(stop: (reason: string) => void): void {
  if (process.env[RELAUNCHED] !== "1" || !process.channel) return;
  process.channel.unref();
  if (!process.connected) stop("launcher exited");
  else process.once("disconnect", () => stop("launcher exited"));
}
