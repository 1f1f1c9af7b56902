/**
 * Circuit breaker (PROTOCOL.md "Breaker"): pure state transitions, no timers and
 * no clock. Every function takes the current time as `now` (ms) and returns a
 * new state; the scope actor owns the state and publishes the transitions as
 * `breaker.opened` / `breaker.half_open` / `breaker.closed` events.
 *
 * Closed keeps a sliding window of reported outcomes in {@link WINDOW_BUCKETS}
 * sub-buckets, so memory stays bounded however many reports arrive.
 */
import type { BreakerPolicy } from "./policy.js";

/** What a report says happened upstream (PROTOCOL.md "Report"). */
export type Outcome = "ok" | "rate_limited" | "error" | "timeout" | "cancelled";

/** One slice of the closed-state window: the outcomes counted in `[start, start + windowMs / WINDOW_BUCKETS)`. */
export interface WindowBucket {
  /** Start of the slice, ms; a multiple of the slice length. */
  start: number;
  /** Outcomes counted in the slice. */
  total: number;
  /** Of which failures. */
  failures: number;
}

/** The breaker's state, a discriminated union on `state`. */
export type BreakerState =
  | { state: "closed"; window: WindowBucket[] }
  | { state: "open"; openedAt: number; until: number }
  | { state: "halfOpen"; inFlight: number; succeeded: number };

/** A change worth an event: `breaker.opened`, `breaker.half_open`, `breaker.closed`. */
export type BreakerTransition = "opened" | "half_open" | "closed";

/** Number of sub-buckets the window is split into. */
export const WINDOW_BUCKETS = 10;

/**
 * Longest `retryAfterMs` hint given to a caller turned away in half-open because
 * all probe slots are taken, ms. The breaker cannot know when the probes finish;
 * a short hint brings the caller back soon after they likely have.
 */
export const HALF_OPEN_RETRY_HINT_MS = 1_000;

/** A fresh breaker: closed, nothing counted. */
export function breakerInit(): BreakerState {
  return { state: "closed", window: [] };
}

/** Closed with an empty window; what `admin.reset` with `what: "breaker"` leads to. */
export function breakerReset(): BreakerState {
  return breakerInit();
}

/**
 * Time-based moves: open → halfOpen once `now >= until`. In closed, sub-buckets
 * that slid out of the window are dropped (no transition). Returns the same state
 * object when nothing changed, so an actor can skip a context update.
 */
export function breakerAdvance(
  s: BreakerState,
  p: BreakerPolicy,
  now: number,
): { state: BreakerState; transition?: BreakerTransition } {
  if (s.state === "open") {
    if (now >= s.until) return { state: { state: "halfOpen", inFlight: 0, succeeded: 0 }, transition: "half_open" };
    return { state: s };
  }
  if (s.state === "closed") {
    const window = prune(s.window, p, now);
    return { state: window === s.window ? s : { state: "closed", window } };
  }
  return { state: s };
}

/**
 * May an admission pass? Call on a state already passed through {@link breakerAdvance}.
 *
 * - closed: yes.
 * - open: no, `retryAfterMs = until - now` (when half-open begins).
 * - halfOpen: yes while fewer than `probes` probes are in flight; otherwise no,
 *   with `retryAfterMs = min(cooldownMs, HALF_OPEN_RETRY_HINT_MS)`: the probes'
 *   end is unknown, so the hint is short rather than a whole cooldown.
 */
export function breakerCheck(
  s: BreakerState,
  p: BreakerPolicy,
  now: number,
): { ok: true } | { ok: false; retryAfterMs: number } {
  switch (s.state) {
    case "closed":
      return { ok: true };
    case "open":
      return { ok: false, retryAfterMs: Math.max(0, s.until - now) };
    case "halfOpen":
      if (s.inFlight < p.probes) return { ok: true };
      return { ok: false, retryAfterMs: Math.max(0, Math.min(p.cooldownMs, HALF_OPEN_RETRY_HINT_MS)) };
  }
}

/**
 * An admission passed every scope: in halfOpen it holds a probe slot
 * (`inFlight + 1`). Closed counts nothing here: only reported outcomes count.
 */
export function breakerOnAdmit(s: BreakerState, _p: BreakerPolicy, _now: number): BreakerState {
  if (s.state === "halfOpen") return { state: "halfOpen", inFlight: s.inFlight + 1, succeeded: s.succeeded };
  return s;
}

/**
 * A reported outcome, or `"expired"`: a lease that ran out unreported.
 *
 * - closed: counted in the window, failures being `error`, `timeout` and
 *   `rate_limited` (unless `countRateLimited === false`); `cancelled` and
 *   `expired` are not counted at all, since they say nothing about the upstream's
 *   health. Opens (`until = now + cooldownMs`) when the window holds at least
 *   `minRequests` outcomes, at least one failure, and `failures / total >= errorRate`.
 * - open: ignored; these are leases admitted before the breaker opened.
 * - halfOpen, `wasProbe` false: ignored, for the same reason.
 * - halfOpen, `wasProbe` true: a failure or `expired` opens again (a new
 *   cooldown); `ok` counts a success and frees the slot, and `probes` successes
 *   close the breaker with an empty window; `cancelled` only frees the slot.
 *   A probe left over from an earlier half-open spell cannot be told apart (the
 *   flag carries no epoch), so `inFlight` is clamped at 0.
 *
 * `wasProbe` must say whether the lease was admitted while half-open. Call on a
 * state already passed through {@link breakerAdvance}.
 */
export function breakerOnOutcome(
  s: BreakerState,
  p: BreakerPolicy,
  outcome: Outcome | "expired",
  now: number,
  wasProbe: boolean,
): { state: BreakerState; transition?: BreakerTransition } {
  switch (s.state) {
    case "open":
      return { state: s };
    case "halfOpen": {
      if (!wasProbe) return { state: s };
      const inFlight = Math.max(0, s.inFlight - 1);
      if (outcome === "cancelled") return { state: { state: "halfOpen", inFlight, succeeded: s.succeeded } };
      if (outcome === "ok") {
        const succeeded = s.succeeded + 1;
        if (succeeded >= p.probes) return { state: breakerInit(), transition: "closed" };
        return { state: { state: "halfOpen", inFlight, succeeded } };
      }
      // With countRateLimited false a 429 is not a health failure, so it neither
      // reopens nor proves the upstream healthy: the probe slot is just freed.
      if (outcome === "rate_limited" && p.countRateLimited === false) return { state: { state: "halfOpen", inFlight, succeeded: s.succeeded } };
      return { state: open(p, now), transition: "opened" };
    }
    case "closed": {
      if (outcome === "cancelled" || outcome === "expired") return { state: s };
      const failed = isFailure(outcome, p);
      const pruned = prune(s.window, p, now);
      // Changed below: never the state's own array.
      const window = pruned === s.window ? pruned.slice() : pruned;
      const start = bucketStart(now, p);
      const last = window[window.length - 1];
      // `now` going backwards (a caller's clock step) folds into the newest slice
      // rather than reordering the window, which stays sorted by `start`.
      if (last !== undefined && last.start >= start) {
        window[window.length - 1] = { start: last.start, total: last.total + 1, failures: last.failures + (failed ? 1 : 0) };
      } else {
        window.push({ start, total: 1, failures: failed ? 1 : 0 });
      }
      const { total, failures } = windowTotals(window);
      // Requiring a failure keeps `errorRate: 0` from opening on successes alone.
      if (total >= p.minRequests && failures > 0 && failures / total >= p.errorRate) {
        return { state: open(p, now), transition: "opened" };
      }
      return { state: { state: "closed", window } };
    }
  }
}

/** Sum of the outcomes counted in a closed window, for inspection and tests. */
export function windowTotals(window: readonly WindowBucket[]): { total: number; failures: number } {
  let total = 0;
  let failures = 0;
  for (const b of window) {
    total += b.total;
    failures += b.failures;
  }
  return { total, failures };
}

function open(p: BreakerPolicy, now: number): BreakerState {
  return { state: "open", openedAt: now, until: now + p.cooldownMs };
}

function isFailure(outcome: Outcome, p: BreakerPolicy): boolean {
  if (outcome === "rate_limited") return p.countRateLimited !== false;
  return outcome === "error" || outcome === "timeout";
}

/** Slice length, ms; at least 1 so that a degenerate `windowMs` cannot divide by zero. */
function bucketMs(p: BreakerPolicy): number {
  return Math.max(1, p.windowMs / WINDOW_BUCKETS);
}

function bucketStart(now: number, p: BreakerPolicy): number {
  const size = bucketMs(p);
  return Math.floor(now / size) * size;
}

/**
 * Keep the slices that start within the last `windowMs`. The effective window is
 * thus between `windowMs - slice` and `windowMs` long, and never counts an outcome
 * older than `windowMs`. Returns `window` itself when no slice is dropped (the
 * common case, checked without allocating), else a fresh array.
 */
function prune<W extends readonly WindowBucket[]>(window: W, p: BreakerPolicy, now: number): W | WindowBucket[] {
  const oldest = now - p.windowMs;
  // Slices are sorted by start: only a prefix can be too old.
  if (window.length === 0 || window[0]!.start > oldest) return window;
  return window.filter((b) => b.start > oldest);
}
