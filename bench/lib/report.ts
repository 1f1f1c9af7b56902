/**
 * Summaries of repeated measurements (median with min–max), the goals of the
 * issue, and the one plain-text table the bench prints.
 */
import type { MemoryResult } from "./memory.js";
import type { LoadResult } from "./result.js";
import type { Series } from "./series.js";

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

/** One measurement (series × level) over its runs. */
export interface Measurement {
  series: string;
  level: number;
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
  /** This median ÷ the reference's median (see `Series.ratio`). */
  ratio?: { value: number; to: string };
  firstError?: string;
}

export function summarize(series: string, level: number, runs: LoadResult[]): Measurement {
  const pick = (f: (r: LoadResult) => number): Spread => spread(runs.map(f));
  const admitted = runs.reduce((a, r) => a + (r.admitted ?? 0), 0);
  const rejected = runs.reduce((a, r) => a + (r.rejected ?? 0), 0);
  const firstError = runs.find((r) => r.firstError !== undefined)?.firstError;
  return {
    series,
    level,
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
    ...(firstError !== undefined ? { firstError } : {}),
  };
}

/** Fill in each measurement's ratio to its series' reference. */
export function addRatios(ms: Measurement[], series: readonly Series[]): void {
  for (const m of ms) {
    const ref = series.find((s) => s.id === m.series)?.ratio;
    if (!ref) continue;
    const other = ms.find((o) => o.series === ref.series && o.level === (ref.level ?? m.level));
    if (other && other.ops.median > 0) m.ratio = { value: m.ops.median / other.ops.median, to: ref.name };
  }
}

/** Something the issue asked for that could not be measured here, and why. */
export interface Skipped {
  series: string;
  label: string;
  section: string;
  reason: string;
}

export interface GoalResult {
  id: string;
  description: string;
  /** MET / MISSED, or SKIPPED when a figure it needs is missing. */
  status: "MET" | "MISSED" | "SKIPPED";
  /** The measured figure, as printed. */
  value?: string;
  target: string;
  /** Why it was skipped. */
  reason?: string;
}

type Find = (series: string, level: number) => Measurement | undefined;

const times = (n: number): string => `${n.toFixed(2)}×`;
/** A ratio: two decimals, or two significant digits below 0.1 (0.0025×). */
export const fmtRatio = (n: number): string => (n > 0 && n < 0.1 ? `${n.toPrecision(2)}×` : times(n));
const signedMs = (n: number): string => `${n >= 0 ? "+" : "−"}${Math.abs(n).toFixed(3)} ms`;

/** The goals of the bench issue. Speed never fails the command: these only print. */
export function evaluateGoals(ms: readonly Measurement[], opts: { clientLevel: number; batchSize: number }, skipped: readonly Skipped[]): GoalResult[] {
  const find: Find = (s, l) => ms.find((m) => m.series === s && m.level === l);
  const why = (...ids: string[]): string => {
    const s = skipped.find((k) => ids.includes(k.series));
    return s ? `${s.label}: ${s.reason}` : `not measured (${ids.join(", ")} at the levels needed)`;
  };
  const out: GoalResult[] = [];

  {
    const s = find("sluice", 64);
    const e = find("echo", 64);
    const description = "sluice single admissions ÷ echo at 64 in flight";
    if (s && e) {
      const v = s.ops.median / e.ops.median;
      out.push({ id: "single-64", description, status: v >= 0.8 ? "MET" : "MISSED", value: times(v), target: ">= 0.80×" });
    } else out.push({ id: "single-64", description, status: "SKIPPED", target: ">= 0.80×", reason: why("sluice", "echo") });
  }
  {
    const s = find("sluice", 1);
    const e = find("echo", 1);
    const description = "sluice p99 − echo p99 at 1 in flight";
    if (s && e) {
      const v = s.p99.median - e.p99.median;
      out.push({ id: "p99-1", description, status: v <= 0.3 ? "MET" : "MISSED", value: signedMs(v), target: "<= 0.3 ms" });
    } else out.push({ id: "p99-1", description, status: "SKIPPED", target: "<= 0.3 ms", reason: why("sluice", "echo") });
  }
  {
    const batches = ms.filter((m) => m.series === "batch");
    const description = `sluice batches (${opts.batchSize} per message), best level`;
    if (batches.length > 0) {
      const best = batches.reduce((a, b) => (b.ops.median > a.ops.median ? b : a));
      const v = best.ops.median;
      out.push({
        id: "batch", description, status: v >= 50_000 ? "MET" : "MISSED",
        value: `${fmtInt(v)} decisions/s at ${best.level} in flight`, target: ">= 50,000 decisions/s",
      });
    } else out.push({ id: "batch", description, status: "SKIPPED", target: ">= 50,000 decisions/s", reason: why("batch") });
  }
  {
    const c = find("client", opts.clientLevel);
    const p = find("rlf-redis", opts.clientLevel);
    const d1 = `client auto-batching ÷ Redis peer at ${opts.clientLevel} in flight (req/s)`;
    const d2 = `client auto-batching p50 vs Redis peer p50 at ${opts.clientLevel} in flight`;
    if (c && p) {
      const v = c.rps.median / p.rps.median;
      out.push({ id: "client-throughput", description: d1, status: v >= 1.5 ? "MET" : "MISSED", value: times(v), target: ">= 1.50×" });
      const d = c.p50.median - p.p50.median;
      out.push({
        id: "client-p50", description: d2, status: d <= 0 ? "MET" : "MISSED",
        value: `${fmtMs(c.p50.median)} vs ${fmtMs(p.p50.median)} ms`, target: "client <= peer",
      });
    } else {
      const reason = why("client", "rlf-redis");
      out.push({ id: "client-throughput", description: d1, status: "SKIPPED", target: ">= 1.50×", reason });
      out.push({ id: "client-p50", description: d2, status: "SKIPPED", target: "client <= peer", reason });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Text output.

const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
export const fmtInt = (n: number): string => (Number.isFinite(n) ? int.format(n) : "-");
/** ms with three decimals; below 0.01 ms (in-process turns) two significant digits. */
export const fmtMs = (n: number): string => {
  if (!Number.isFinite(n)) return "-";
  if (n > 0 && n < 0.01) return n.toPrecision(2);
  return n.toFixed(3);
};
const range = (s: Spread, f: (n: number) => string): string => (s.min === s.max || !Number.isFinite(s.min) ? "" : `${f(s.min)}–${f(s.max)}`);

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

type Row = { kind: "cells"; cells: string[] } | { kind: "section"; text: string } | { kind: "skip"; label: string; level: string; text: string };

/**
 * The one table: a block per section (heading, then a row per series and
 * level), skipped series in their place with the reason.
 */
export function resultsTable(series: readonly Series[], ms: readonly Measurement[], skipped: readonly Skipped[]): string {
  const header = ["series", "level", "ops/s", "(min–max)", "p50 ms", "(min–max)", "p99 ms", "(min–max)", "p99.9 ms", "ratio", "errors", "admitted"];
  const right = new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  const rows: Row[] = [];
  let section = "";
  for (const s of series) {
    const mine = ms.filter((m) => m.series === s.id);
    const skip = skipped.find((k) => k.series === s.id);
    if (mine.length === 0 && !skip) continue;
    if (s.section !== section) {
      section = s.section;
      rows.push({ kind: "section", text: section });
    }
    if (skip) {
      rows.push({ kind: "skip", label: `  ${s.label}`, level: s.levels.join(","), text: `skipped: ${skip.reason}` });
      continue;
    }
    for (const m of mine) {
      rows.push({
        kind: "cells",
        cells: [
          `  ${s.label}`,
          s.levelKind === "per turn" ? `${m.level}/turn` : s.levelKind === "no ack" ? "pub" : String(m.level),
          fmtInt(m.ops.median),
          range(m.ops, fmtInt),
          fmtMs(m.p50.median),
          range(m.p50, fmtMs),
          fmtMs(m.p99.median),
          range(m.p99, fmtMs),
          fmtMs(m.p999.median),
          m.ratio ? `${fmtRatio(m.ratio.value)} ${m.ratio.to}` : "",
          String(m.errors),
          m.admitShare === undefined ? "-" : `${(m.admitShare * 100).toFixed(1)}%`,
        ],
      });
    }
  }
  const cellRows = rows.flatMap((r) => (r.kind === "cells" ? [r.cells] : []));
  const widths = header.map((h, i) => Math.max(h.length, ...cellRows.map((c) => c[i]!.length), ...rows.map((r) => (r.kind === "skip" ? (i === 0 ? r.label.length : i === 1 ? r.level.length : 0) : 0))));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  const out = [line(header), line(widths.map((w) => "-".repeat(w)))];
  for (const r of rows) {
    if (r.kind === "section") out.push(r.text);
    else if (r.kind === "skip") out.push(`${r.label.padEnd(widths[0]!)}  ${r.level.padStart(widths[1]!)}  ${r.text}`);
    else out.push(line(r.cells));
  }
  return out.join("\n");
}

/**
 * CPU µs per op of one run, by process, and the cores they kept busy together;
 * undefined without CPU figures. The total and the cores only where every process
 * the run drove was read (no /proc: the generator's own figure alone).
 */
function cpuPerOp(r: LoadResult, usesNats: boolean): { target?: number; nats?: number; generator: number; total?: number; cores?: number } | undefined {
  const ops = (r.ops * r.durationMs) / 1000;
  if (!r.cpu || !(ops > 0)) return undefined;
  const per = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : (ms * 1000) / ops);
  const whole = r.cpu.target !== undefined && (!usesNats || r.cpu.nats !== undefined);
  const usedMs = r.cpu.generator + (r.cpu.target ?? 0) + (r.cpu.nats ?? 0);
  return {
    target: per(r.cpu.target),
    nats: per(r.cpu.nats),
    generator: per(r.cpu.generator)!,
    ...(whole ? { total: per(usedMs)!, cores: usedMs / r.durationMs } : {}),
  };
}

/**
 * Where the machine's CPU went in the network series: per op (decision, echo,
 * peer check), the process driven (sluice, the echo responder or redis-server),
 * nats-server and the load generator, all threads of each, medians of the runs;
 * and how many cores the three kept busy in all. Empty when no run has CPU figures.
 */
export function cpuTable(series: readonly Series[], ms: readonly Measurement[]): string {
  const rows: string[][] = [];
  const us = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : "-");
  const cores = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : "-");
  for (const s of series) {
    for (const m of ms.filter((x) => x.series === s.id)) {
      const per = m.runs.map((r) => cpuPerOp(r, s.needs.includes("nats"))).filter((c) => c !== undefined);
      if (per.length === 0) continue;
      const med = (f: (c: NonNullable<ReturnType<typeof cpuPerOp>>) => number | undefined): number => {
        const v = per.map(f).filter((x): x is number => x !== undefined);
        return v.length === 0 ? Number.NaN : spread(v).median;
      };
      rows.push([
        `  ${s.label}`,
        String(m.level),
        us(med((c) => c.target)),
        us(med((c) => c.nats)),
        us(med((c) => c.generator)),
        us(med((c) => c.total)),
        cores(med((c) => c.cores)),
      ]);
    }
  }
  if (rows.length === 0) return "";
  return table(["series", "level", "driven µs/op", "nats-server µs/op", "generator µs/op", "total µs/op", "cores busy"], rows, new Set([1, 2, 3, 4, 5, 6]));
}

export function goalLines(goals: readonly GoalResult[]): string {
  return goals
    .map((g) => {
      const tag = g.status.padEnd(7);
      if (g.status === "SKIPPED") return `${tag} ${g.description} (target ${g.target}): ${g.reason}`;
      return `${tag} ${g.description}: ${g.value} (target ${g.target})`;
    })
    .join("\n");
}

// ---------------------------------------------------------------------------------------------
// Memory with many keys.

export const PEAK_RSS_TARGET_BYTES = 1.5 * 2 ** 30;
const mib = (b: number): string => (Number.isFinite(b) ? `${(b / 2 ** 20).toFixed(1)} MiB` : "-");
const bytes = (b: number): string => (Number.isFinite(b) ? `${fmtInt(b)} B` : "-");

/** The memory series as a small two-column table. */
export function memoryTable(m: MemoryResult): string {
  const rows: [string, string][] = [
    ["keys driven", `${fmtInt(m.keys)} (${m.admitsPerKey} admissions each, ${m.batchSize} per admit.batch, ${m.concurrency} in flight)`],
    ["keys/s driven", `${fmtInt(m.keysPerSecond)} (${fmtInt(m.decisionsPerSecond)} decisions/s; ${fmtInt(m.admitted)} admitted, ${fmtInt(m.rejected)} rejected, ${m.errors} errors; ${(m.driveMs / 1000).toFixed(1)} s)`],
    ["peak RSS (VmHWM)", `${mib(m.peakRssBytes)} (empty process ${mib(m.emptyRssBytes)})`],
    ["peak heap used", `${mib(m.peakHeapBytes)} (empty process ${mib(m.emptyHeapBytes)})`],
    ["live actors at peak heap", `${fmtInt(m.liveAtPeakHeap)} of ${fmtInt(m.keysAtPeakHeap)} keys driven then (most live: ${fmtInt(m.maxLiveActors)})`],
    [`after idle (${(m.tailMs / 1000).toFixed(0)} s)`, `heap ${mib(m.idleHeapBytes)}, RSS ${mib(m.idleRssBytes)}, ${fmtInt(m.liveAfterIdle)} live, ${fmtInt(m.dormantAfterIdle)} passivated (kept dormant)`],
  ];
  if (m.gc) {
    rows.push(
      ["heap after full GC", `empty ${mib(m.gc.empty)}; right after the drive ${mib(m.gc.afterDrive)} with ${fmtInt(m.gc.liveAfterDrive)} live; after idle ${mib(m.gc.idle)} with ${fmtInt(m.gc.liveIdle)} live`],
      ["bytes per live actor", `${bytes(m.bytesPerLiveActor)} (after-drive GC heap − empty − passivated × per-key, ÷ live)`],
      ["bytes per passivated key", `${bytes(m.bytesPerPassivatedKey)} (idle GC heap − empty, ÷ passivated)`],
    );
  } else {
    rows.push(
      ["bytes per live actor", `${bytes(m.bytesPerLiveActor)} (peak /metrics heap − empty − dormant share, ÷ live; garbage included)`],
      ["bytes per passivated key", `${bytes(m.bytesPerPassivatedKey)} (idle /metrics heap − empty, ÷ passivated; garbage included)`],
    );
  }
  if (m.firstError) rows.push(["first error", m.firstError]);
  return table(["figure", "value"], rows, new Set());
}

export function memoryGoal(m: MemoryResult | undefined, reason?: string, failure?: string, keys?: number): GoalResult {
  const target = "<= 1.5 GiB";
  if (!m && failure) {
    return { id: "memory-rss", description: `peak RSS driving ${fmtInt(keys ?? Number.NaN)} distinct keys`, status: "MISSED", value: `sluice died: ${failure.split("\n")[0]}`, target };
  }
  if (!m) return { id: "memory-rss", description: "peak RSS driving many distinct keys", status: "SKIPPED", target, reason: reason ?? "not measured" };
  return {
    id: "memory-rss",
    description: `peak RSS (VmHWM) driving ${fmtInt(m.keys)} distinct keys`,
    status: m.peakRssBytes <= PEAK_RSS_TARGET_BYTES ? "MET" : "MISSED",
    value: `${mib(m.peakRssBytes)}; ${bytes(m.bytesPerLiveActor)}/live actor, ${bytes(m.bytesPerPassivatedKey)}/passivated key`,
    target,
  };
}
