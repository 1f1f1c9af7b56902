/**
 * Summaries of repeated measurements (median with min–max), the goals of the
 * issue, and the plain-text table the bench prints.
 */
import type { LoadResult } from "../load.js";

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]! };
}

/** One measurement (target × in-flight count) over its runs. */
export interface Measurement {
  target: string;
  concurrency: number;
  runs: LoadResult[];
  ops: Spread;
  rps: Spread;
  p50: Spread;
  p90: Spread;
  p99: Spread;
  p999: Spread;
  mean: Spread;
  /** Summed over the runs. */
  errors: number;
  timeouts: number;
  count: number;
  /** Share of decisions admitted (admit modes), over all runs. */
  admitShare?: number;
}

export function summarize(target: string, concurrency: number, runs: LoadResult[]): Measurement {
  const pick = (f: (r: LoadResult) => number): Spread => spread(runs.map(f));
  const admitted = runs.reduce((a, r) => a + (r.admitted ?? 0), 0);
  const rejected = runs.reduce((a, r) => a + (r.rejected ?? 0), 0);
  return {
    target,
    concurrency,
    runs,
    ops: pick((r) => r.ops),
    rps: pick((r) => r.rps),
    p50: pick((r) => r.p50),
    p90: pick((r) => r.p90),
    p99: pick((r) => r.p99),
    p999: pick((r) => r.p999),
    mean: pick((r) => r.mean),
    errors: runs.reduce((a, r) => a + r.errors, 0),
    timeouts: runs.reduce((a, r) => a + r.timeouts, 0),
    count: runs.reduce((a, r) => a + r.count, 0),
    ...(admitted + rejected > 0 ? { admitShare: admitted / (admitted + rejected) } : {}),
  };
}

export interface GoalResult {
  id: string;
  description: string;
  /** The measured figure (ratio, or ms). */
  value: number;
  threshold: number;
  comparison: ">=" | "<=";
  unit: string;
  met: boolean;
}

/** A goal: computed from the measurements when the ones it needs exist. */
export interface Goal {
  id: string;
  evaluate(find: (target: string, concurrency: number) => Measurement | undefined): GoalResult | undefined;
}

/** The goals of the first bench issue. */
export const GOALS: Goal[] = [
  {
    id: "throughput-64",
    evaluate(find) {
      const s = find("sluice", 64);
      const e = find("echo", 64);
      if (!s || !e) return undefined;
      const value = s.ops.median / e.ops.median;
      return {
        id: this.id,
        description: "sluice ops/s ÷ echo ops/s at 64 in flight",
        value,
        threshold: 0.8,
        comparison: ">=",
        unit: "×",
        met: value >= 0.8,
      };
    },
  },
  {
    id: "p99-1",
    evaluate(find) {
      const s = find("sluice", 1);
      const e = find("echo", 1);
      if (!s || !e) return undefined;
      const value = s.p99.median - e.p99.median;
      return {
        id: this.id,
        description: "sluice p99 − echo p99 at 1 in flight",
        value,
        threshold: 0.3,
        comparison: "<=",
        unit: "ms",
        met: value <= 0.3,
      };
    },
  },
];

export function evaluateGoals(measurements: readonly Measurement[], goals: readonly Goal[] = GOALS): GoalResult[] {
  const find = (t: string, c: number) => measurements.find((m) => m.target === t && m.concurrency === c);
  return goals.map((g) => g.evaluate(find)).filter((g): g is GoalResult => g !== undefined);
}

// ---------------------------------------------------------------------------------------------
// Text output.

const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
export const fmtInt = (n: number): string => (Number.isFinite(n) ? int.format(n) : "-");
export const fmtMs = (n: number): string => (Number.isFinite(n) ? n.toFixed(3) : "-");
const range = (s: Spread, f: (n: number) => string): string => (s.min === s.max ? "" : `${f(s.min)}–${f(s.max)}`);

/** Align rows of cells; columns listed in `right` are right-aligned. */
export function table(header: string[], rows: string[][], right: ReadonlySet<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

export function measurementTable(ms: readonly Measurement[]): string {
  const header = ["target", "in flight", "ops/s", "(min–max)", "p50 ms", "(min–max)", "p99 ms", "(min–max)", "p99.9 ms", "errors", "admitted"];
  const rows = ms.map((m) => [
    m.target,
    String(m.concurrency),
    fmtInt(m.ops.median),
    range(m.ops, fmtInt),
    fmtMs(m.p50.median),
    range(m.p50, fmtMs),
    fmtMs(m.p99.median),
    range(m.p99, fmtMs),
    fmtMs(m.p999.median),
    String(m.errors),
    m.admitShare === undefined ? "-" : `${(m.admitShare * 100).toFixed(1)}%`,
  ]);
  return table(header, rows, new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
}

export function goalLines(goals: readonly GoalResult[]): string {
  return goals
    .map((g) => {
      const v = g.unit === "ms" ? `${g.value >= 0 ? "+" : ""}${g.value.toFixed(3)} ms` : `${g.value.toFixed(2)}${g.unit}`;
      const t = g.unit === "ms" ? `${g.threshold} ms` : `${g.threshold}${g.unit}`;
      return `${g.met ? "MET   " : "MISSED"}  ${g.description}: ${v} (target ${g.comparison} ${t})`;
    })
    .join("\n");
}
