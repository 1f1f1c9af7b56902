/**
 * Adaptive pacing on upstream 429s (PROTOCOL.md "Adaptive backoff"), per model.
 * Pure: time is the `now` argument (ms).
 *
 * The state holds the pacing interval and the next free call slot. Admissions
 * take slots one interval apart, whoever the caller, so that calls land at
 * `nextSlotAt`, `nextSlotAt + interval`, …; each admission is told how long to
 * wait (`delayMs`) before calling upstream.
 */
import type { AdaptivePolicy } from "./policy.js";
import type { Outcome } from "./breaker.js";

/** Pacing of one model. */
export interface PacingState {
  /** Minimum spacing between calls, ms. 0: no pacing. */
  intervalMs: number;
  /** Consecutive `ok` reports since the last 429 or shrink. */
  okStreak: number;
  /** Earliest time the next admitted call may go upstream, ms. */
  nextSlotAt: number;
  /** When the interval last grew, ms (null: never). */
  grownAt: number | null;
}

/** No pacing. */
export function pacingInit(): PacingState {
  return { intervalMs: 0, okStreak: 0, nextSlotAt: 0, grownAt: null };
}

/** No pacing; what `admin.reset` leads to. */
export function pacingReset(): PacingState {
  return pacingInit();
}

/**
 * Fold a reported outcome into the pacing.
 *
 * - `rate_limited`: the interval becomes `baseMs` (from 0) or `interval * factor`,
 *   capped at `maxMs` — but at most once per interval: 429s arriving within one
 *   interval of the last growth come from calls booked before it took effect, and
 *   are one congestion signal, not many (as TCP cuts its window once per round
 *   trip). The streak restarts and the next slot moves to at least
 *   `now + interval`. The upstream's own `retryAfterMs` is a pause, not a new
 *   spacing: no slot before `now + retryAfterMs`, after which calls go one
 *   (grown) interval apart. Taking a whole-second Retry-After as the spacing of
 *   every call would cut a fast model to one call a second.
 * - `ok`: the streak grows; after `recoverAfter` in a row the interval shrinks by
 *   `recovery`, down to 0 once under 1 ms. While the interval is 0 nothing is
 *   counted (there is nothing to recover, and the state stays the same object).
 * - `error`, `timeout`: the streak restarts ("consecutive ok" is broken), the
 *   interval stays: they are not a rate signal (the breaker and load shedding
 *   handle them).
 * - `cancelled`: no change; it says nothing about the upstream.
 *
 * `changed` is true when `intervalMs` changed (a `pacing.changed` event).
 */
export function pacingOnOutcome(
  s: PacingState,
  p: AdaptivePolicy,
  outcome: Outcome,
  retryAfterMs: number | undefined,
  now: number,
): { state: PacingState; changed: boolean } {
  switch (outcome) {
    case "rate_limited": {
      const recentlyGrown = s.intervalMs > 0 && s.grownAt !== null && now < s.grownAt + s.intervalMs;
      const intervalMs = recentlyGrown ? s.intervalMs : Math.min(s.intervalMs === 0 ? p.baseMs : s.intervalMs * p.factor, p.maxMs);
      const pause = retryAfterMs !== undefined && Number.isFinite(retryAfterMs) ? Math.max(intervalMs, retryAfterMs) : intervalMs;
      const nextSlotAt = Math.max(s.nextSlotAt, now + pause);
      const grownAt = intervalMs !== s.intervalMs ? now : s.grownAt;
      return { state: { intervalMs, okStreak: 0, nextSlotAt, grownAt }, changed: intervalMs !== s.intervalMs };
    }
    case "ok": {
      if (s.intervalMs === 0) return { state: s, changed: false };
      const okStreak = s.okStreak + 1;
      // recoverAfter below 1 would mean "shrink on every ok"; treat it as 1.
      if (okStreak < Math.max(1, p.recoverAfter)) return { state: { intervalMs: s.intervalMs, okStreak, nextSlotAt: s.nextSlotAt, grownAt: s.grownAt }, changed: false };
      let intervalMs = s.intervalMs * p.recovery;
      if (intervalMs < 1) intervalMs = 0;
      return { state: { intervalMs, okStreak: 0, nextSlotAt: s.nextSlotAt, grownAt: s.grownAt }, changed: intervalMs !== s.intervalMs };
    }
    case "error":
    case "timeout":
      return { state: s.okStreak === 0 ? s : { intervalMs: s.intervalMs, okStreak: 0, nextSlotAt: s.nextSlotAt, grownAt: s.grownAt }, changed: false };
    case "cancelled":
      return { state: s, changed: false };
  }
}

/**
 * How long the next admission must wait before calling upstream, ms:
 * `max(0, nextSlotAt - now)`, and 0 whenever the interval is 0 (fully recovered:
 * slots handed out under an older interval no longer hold anyone back).
 * Not rounded; the wire layer rounds up.
 */
export function pacingDelay(s: PacingState, now: number): number {
  if (s.intervalMs === 0) return 0;
  return Math.max(0, s.nextSlotAt - now);
}

/**
 * An admission took the next slot (its call lands at `max(now, nextSlotAt)`):
 * the following slot is one interval later. Unchanged while the interval is 0.
 */
export function pacingTake(s: PacingState, now: number): PacingState {
  if (s.intervalMs === 0) return s;
  // Written out, not `{ ...s, nextSlotAt }`: V8 builds spreads with overrides on a slow path, and this runs per admission.
  return { intervalMs: s.intervalMs, okStreak: s.okStreak, nextSlotAt: Math.max(now, s.nextSlotAt) + s.intervalMs, grownAt: s.grownAt };
}
