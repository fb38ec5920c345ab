/**
 * Summarizes a V8 .cpuprofile: the functions with the most self time, and the
 * source files (or packages) they live in. Used for the profile summaries in
 * docs/benchmarks.md:
 *   npx tsx bench/profile-summary.ts bench/results/<file>.cpuprofile [top]
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface FrameCost {
  readonly name: string;
  readonly where: string;
  readonly selfMs: number;
  readonly share: number;
}

function place(url: string): string {
  if (url === "") return "(native)";
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + "node_modules/".length).split("/");
    return rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  const src = url.indexOf("/src/");
  if (src >= 0) return url.slice(src + 1);
  const bench = url.indexOf("/bench/");
  if (bench >= 0) return url.slice(bench + 1);
  return url.replace(/^node:/, "node:");
}

export function summarize(profile: Profile, top = 15): { totalMs: number; frames: FrameCost[]; places: FrameCost[] } {
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + (deltas[i] ?? 0));
  const byFrame = new Map<string, { name: string; where: string; us: number }>();
  const byPlace = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    const us = selfUs.get(node.id) ?? 0;
    if (us === 0) continue;
    const where = place(node.callFrame.url);
    const name = node.callFrame.functionName || "(anonymous)";
    // "(idle)"/"(program)": not running JS. "dispatch" (native, no URL): the frame an
    // in-process inspector session's samples land in while the thread waits;
    // the idle profiles show it even with no work (see docs/benchmarks.md).
    if (name === "(idle)" || name === "(program)" || (name === "dispatch" && node.callFrame.url === "")) continue;
    total += us;
    const key = `${name}\u0000${where}:${node.callFrame.lineNumber}`;
    const entry = byFrame.get(key) ?? { name, where: `${where}:${node.callFrame.lineNumber + 1}`, us: 0 };
    entry.us += us;
    byFrame.set(key, entry);
    byPlace.set(where, (byPlace.get(where) ?? 0) + us);
  }
  const frames = [...byFrame.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((f) => ({ name: f.name, where: f.where, selfMs: f.us / 1000, share: f.us / total }));
  const places = [...byPlace.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([where, us]) => ({ name: where, where, selfMs: us / 1000, share: us / total }));
  return { totalMs: total / 1000, frames, places };
}

export function markdown(summary: ReturnType<typeof summarize>, top = 12): string {
  const lines = [`Busy (non-idle) samples: ${summary.totalMs.toFixed(0)} ms`, "", "| self ms | share | function | where |", "| ---: | ---: | --- | --- |"];
  for (const f of summary.frames.slice(0, top)) lines.push(`| ${f.selfMs.toFixed(0)} | ${(f.share * 100).toFixed(1)}% | \`${f.name}\` | ${f.where} |`);
  lines.push("", "| self ms | share | file / package |", "| ---: | ---: | --- |");
  for (const p of summary.places.slice(0, top)) lines.push(`| ${p.selfMs.toFixed(0)} | ${(p.share * 100).toFixed(1)}% | ${p.name} |`);
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: profile-summary.ts <file.cpuprofile> [top]");
  const top = Number(process.argv[3] ?? 15);
  console.log(markdown(summarize(JSON.parse(readFileSync(file, "utf8")) as Profile, top), top));
}
