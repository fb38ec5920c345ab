/** Percentiles of a sample, as the benchmark tables report them. */
export interface Percentiles {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly count: number;
}

/** Nearest-rank percentiles (NaN when there are no values). */
export function percentiles(values: readonly number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: nearestRank(sorted, 0.5), p99: nearestRank(sorted, 0.99), max: sorted.at(-1) ?? NaN, count: sorted.length };
}

/** The nearest-rank `q` quantile of ascending `sorted` (NaN when it is empty). */
export function nearestRank(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

/** A number as the tables print it: whole, one or two decimals, or a dash when it was not measured. */
export const f0 = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? "–" : v.toFixed(0));
export const f1 = (v: number): string => (Number.isNaN(v) ? "–" : v.toFixed(1));
export const f2 = (v: number): string => (Number.isNaN(v) ? "–" : v.toFixed(2));
