/**
 * Time-weighted exponential moving average for load shedding (PROTOCOL.md
 * "Load shedding"): TTFT and ITL averages that decay toward zero while no
 * reports come, so that a model shed for slowness is tried again. Pure: time is
 * the `now` argument (ms).
 *
 * The state is a decayed weighted sum `s` and a decayed weight `w`, both as of
 * `at`. A sample at `t` decays both by `k = exp(-(t - at) / tau)` and adds
 * itself with weight 1; reading at `t` decays likewise and divides by
 * `max(w, 1)`. With frequent samples `w >> 1` and the value is the
 * time-weighted mean; simultaneous samples each count (k = 1); after a long gap
 * `w` falls under 1 and the value decays toward 0 with time constant `tau`, while
 * a single sample after such a gap reads as itself.
 */

/** Average state: decayed weighted sum, decayed weight, time of the last update (ms). */
export interface AverageState {
  /** Decayed weighted sum of the samples, as of `at`. */
  s: number;
  /** Decayed sum of the weights, as of `at`. */
  w: number;
  /** Time of the last update, ms. */
  at: number;
}

/** An empty average (reads 0). */
export function averageInit(now: number): AverageState {
  return { s: 0, w: 0, at: now };
}

/**
 * Add sample `x` taken at `now`. A sample older than the last update counts
 * as if taken at `at`: decaying by a factor above 1 would inflate the history.
 */
export function averageAdd(a: AverageState, x: number, now: number, tauMs: number): AverageState {
  const k = decay(a, now, tauMs);
  return { s: a.s * k + x, w: a.w * k + 1, at: Math.max(a.at, now) };
}

/** The average as read at `now` (decayed toward 0 when samples have stopped). */
export function averageValue(a: AverageState, now: number, tauMs: number): number {
  const k = decay(a, now, tauMs);
  return (a.s * k) / Math.max(a.w * k, 1);
}

/** exp(-(now - at) / tau), 1 for a time before `at`; a non-positive tau forgets everything at once. */
function decay(a: AverageState, now: number, tauMs: number): number {
  const dt = now - a.at;
  if (dt <= 0) return 1;
  if (!(tauMs > 0)) return 0;
  return Math.exp(-dt / tauMs);
}
