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
