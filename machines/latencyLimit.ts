/**
 * An adaptive concurrency limit per model, driven by the latency each report
 * carries (AIMD, as TCP does with its window): a report over the threshold cuts
 * the limit by `cut` (at most once per `cutEveryMs`, since the calls in flight
 * when latency rose report it many times over), every report under it grows the
 * limit by 1/limit (about one more slot per limit's worth of good calls).
 *
 * Why not only the averages: shedding on a moving average is all-or-nothing on a
 * signal that lags a whole call, so when the average dips every waiting caller is
 * let in at once and latency overshoots again. A limit on calls in flight keeps
 * the upstream near the load it can serve under the threshold. Pure.
 */
import type { LatencyPolicy } from "./policy.js";

/** Defaults of the adaptive limit, in calls and ms. */
export const LATENCY_LIMIT_DEFAULTS = {
  /** Limit before any report has come, calls in flight. */
  initialConcurrency: 16,
  minConcurrency: 1,
  maxConcurrency: 1000,
  /** Multiplicative cut on a slow report. */
  cut: 0.9,
  /** At most one cut per this long, ms. */
  cutEveryMs: 1000,
} as const;

export interface LatencyLimitState {
  /** Calls in flight allowed (fractional: grows by 1/limit). */
  limit: number;
  /** When the limit was last cut, ms (null: never). */
  cutAt: number | null;
}

/** The latency figures of one report. */
export interface LatencySample {
  ttftMs?: number;
  itlMs?: number;
}

export function latencyLimitInit(p: LatencyPolicy): LatencyLimitState {
  const { min, max } = bounds(p);
  return { limit: Math.min(max, Math.max(min, p.initialConcurrency ?? LATENCY_LIMIT_DEFAULTS.initialConcurrency)), cutAt: null };
}

function bounds(p: LatencyPolicy): { min: number; max: number } {
  return {
    min: p.minConcurrency ?? LATENCY_LIMIT_DEFAULTS.minConcurrency,
    max: p.maxConcurrency ?? LATENCY_LIMIT_DEFAULTS.maxConcurrency,
  };
}

/** Is any figure of the sample over its threshold? `undefined` when the sample has no figure the policy watches. */
export function sampleIsSlow(p: LatencyPolicy, s: LatencySample): boolean | undefined {
  let seen = false;
  if (p.ttftMs !== undefined && s.ttftMs !== undefined) {
    seen = true;
    if (s.ttftMs > p.ttftMs) return true;
  }
  if (p.itlMs !== undefined && s.itlMs !== undefined) {
    seen = true;
    if (s.itlMs > p.itlMs) return true;
  }
  return seen ? false : undefined;
}

/** Fold one report's latency into the limit. A report with no watched figure changes nothing. */
export function latencyLimitOnReport(st: LatencyLimitState, p: LatencyPolicy, s: LatencySample, now: number): LatencyLimitState {
  const slow = sampleIsSlow(p, s);
  if (slow === undefined) return st;
  const { min, max } = bounds(p);
  if (slow) {
    if (st.cutAt !== null && now - st.cutAt < LATENCY_LIMIT_DEFAULTS.cutEveryMs) return st;
    return { limit: Math.max(min, st.limit * LATENCY_LIMIT_DEFAULTS.cut), cutAt: now };
  }
  if (st.limit >= max) return st;
  return { limit: Math.min(max, st.limit + 1 / st.limit), cutAt: st.cutAt };
}

/** Calls in flight allowed now. */
export function latencyLimitSlots(st: LatencyLimitState): number {
  return Math.max(1, Math.floor(st.limit));
}
