import { useServerBufferPool } from "../src/cli/buffer-pool.ts";
import { missingServerFlags } from "../src/cli/node-flags.ts";

/** Command-line options of the benchmarks: `--name value` and bare `--flag`. */

export function option(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? (process.argv[index + 1] ?? fallback) : fallback;
}

export function numberOption(name: string, fallback: number): number {
  return Number(option(name, String(fallback)));
}

export function flag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

/**
 * Benchmark processes run as `signalbox serve` runs: its Buffer pool size
 * (src/cli/buffer-pool.ts) is set here, and its V8 flags (src/cli/node-flags.ts)
 * must be on the command line; says so on stderr when they are missing.
 */
export function asServerProcess(): void {
  useServerBufferPool();
  const missing = missingServerFlags(process.execArgv, process.env.NODE_OPTIONS ?? "");
  if (missing.length > 0) console.error(`note: without ${missing.join(" ")} (what \`signalbox serve\` runs with): run as node --expose-gc ${missing.join(" ")} --import tsx …`);
}
