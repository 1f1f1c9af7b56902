/**
 * What a load generator (bench/load.ts) or an in-process run (bench/inproc.ts)
 * prints: one JSON line, read by the orchestrator.
 */
import type { Histogram } from "hdr-histogram-js";

/** Modes of bench/load.ts (separate process, calls over the network). */
export const LOAD_MODES = ["echo", "admit", "batch", "client", "rlf-redis"] as const;
/** Modes of bench/inproc.ts (separate process, no network). */
export const INPROC_MODES = ["core", "plain", "rlf-memory"] as const;
/** Modes measured by the orchestrator itself against sluices of their own (bench/lib/durability.ts). */
export const OWN_MODES = ["report-ack", "report-publish"] as const;
export type LoadMode = (typeof LOAD_MODES)[number] | (typeof INPROC_MODES)[number] | (typeof OWN_MODES)[number];

/** What one load run prints (times in ms). */
export interface LoadResult {
  mode: LoadMode;
  /** NATS subject, or what was called. */
  subject: string;
  /** Calls in flight (NATS, Redis), or requests per turn (in process). */
  concurrency: number;
  /** Decisions (or echoes) per call: the batch size (or requests per turn), else 1. */
  opsPerRequest: number;
  durationMs: number;
  /** Successful calls inside the window. */
  count: number;
  /** Calls per second. */
  rps: number;
  /** Decisions (or echoes, or checks) per second: rps × opsPerRequest. */
  ops: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
  /** Failed calls inside the window: timeouts + no responders + error replies + other. */
  errors: number;
  timeouts: number;
  errorReplies: number;
  /** Decisions that were admit / reject (not in echo mode). */
  admitted?: number;
  rejected?: number;
  /** The first error seen, for the report. */
  firstError?: string;
  /** CPU time used in the measured window (network modes). */
  cpu?: WindowCpu;
}

/**
 * CPU time, ms, used during a generator's measured window, all threads of each
 * process: the generator's own (process.cpuUsage, printed by it), and that of
 * the process it drove (sluice, the echo responder, redis-server) and of
 * nats-server, which the orchestrator reads from /proc when the generator
 * prints {@link WINDOW_START} and {@link WINDOW_END}.
 */
export interface WindowCpu {
  generator: number;
  target?: number;
  nats?: number;
}

/** Lines a load generator prints on stdout as its measured window begins and ends (before its result line). */
export const WINDOW_START = "#window start";
export const WINDOW_END = "#window end";


/** The latency figures of a {@link LoadResult}. */
export type LatencyFigures = Pick<LoadResult, "p50" | "p90" | "p99" | "p999" | "max" | "mean">;

/**
 * Latency figures in ms from a histogram recorded in units of `1 / unitsPerMs` ms
 * (1000: microseconds, 1e6: nanoseconds); all NaN without a histogram.
 */
export function latencyFigures(hist: Histogram | undefined, unitsPerMs: number): LatencyFigures {
  const ms = (v: number): number => (hist ? Math.round(v) / unitsPerMs : Number.NaN);
  const pct = (p: number): number => ms(hist ? hist.getValueAtPercentile(p) : Number.NaN);
  return { p50: pct(50), p90: pct(90), p99: pct(99), p999: pct(99.9), max: ms(hist?.maxValue ?? Number.NaN), mean: ms(hist?.mean ?? Number.NaN) };
}
