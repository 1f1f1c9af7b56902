import type { BucketLimit } from "./policy.js";

/** A token bucket's level at a moment; the level at a later moment is derived, never stored by a timer. */
export interface BucketState {
  /** Units in the bucket at `at` (may be negative: debt from reports above their estimate). */
  level: number;
  /** When `level` was true, ms epoch. */
  at: number;
}

/** Float slack so that a bucket refilled to exactly `amount` admits it. */
const EPSILON = 1e-9;

/** A full bucket at `now`. */
export function bucketInit(limit: BucketLimit, now: number): BucketState {
  return { level: limit.burst, at: now };
}

/** The level at `now`: refilled at `ratePerMs`, capped at `burst`. */
export function bucketLevel(b: BucketState, limit: BucketLimit, now: number): number {
  const elapsed = Math.max(0, now - b.at);
  return Math.min(limit.burst, b.level + elapsed * limit.ratePerMs);
}

export type BucketVerdict =
  | { ok: true; remaining: number }
  | { ok: false; tooLarge: true; remaining: number }
  | { ok: false; tooLarge: false; remaining: number; retryAfterMs: number };

/**
 * May `amount` units be taken at `now`? A request larger than the bucket can ever
 * hold is `tooLarge`; otherwise `retryAfterMs` is exactly when the bucket will hold it.
 */
export function bucketCheck(b: BucketState, limit: BucketLimit, amount: number, now: number): BucketVerdict {
  const level = bucketLevel(b, limit, now);
  if (amount > limit.burst) return { ok: false, tooLarge: true, remaining: Math.max(0, level) };
  if (level + EPSILON >= amount) return { ok: true, remaining: level - amount };
  return { ok: false, tooLarge: false, remaining: Math.max(0, level), retryAfterMs: bucketWaitMs(level, limit, amount) };
}

/** Take `amount` units (call after a successful check). */
export function bucketTake(b: BucketState, limit: BucketLimit, amount: number, now: number): BucketState {
  const next = { level: b.level, at: b.at };
  bucketTakeInPlace(next, limit, amount, now);
  return next;
}

/** {@link bucketTake}, written into `b` itself: for the scope actor's own state, which it alone holds. */
export function bucketTakeInPlace(b: BucketState, limit: BucketLimit, amount: number, now: number): void {
  b.level = bucketLevel(b, limit, now) - amount;
  b.at = Math.max(now, b.at);
}

/**
 * Correct the bucket by `delta` units after the fact: positive when a report used
 * more than its estimate (the bucket may go into debt), negative to refund an overestimate.
 */
export function bucketAdjust(b: BucketState, limit: BucketLimit, delta: number, now: number): BucketState {
  const next = { level: b.level, at: b.at };
  bucketAdjustInPlace(next, limit, delta, now);
  return next;
}

/** {@link bucketAdjust}, written into `b` itself. */
export function bucketAdjustInPlace(b: BucketState, limit: BucketLimit, delta: number, now: number): void {
  b.level = Math.min(limit.burst, bucketLevel(b, limit, now) - delta);
  b.at = Math.max(now, b.at);
}

/** Milliseconds until the bucket holds `amount` again (0 when it does now). */
export function bucketRoomInMs(b: BucketState, limit: BucketLimit, amount: number, now: number): number {
  return bucketWaitMs(bucketLevel(b, limit, now), limit, amount);
}

/** Milliseconds until a bucket at `level` now holds `amount` (0 when it does; Infinity when it never refills). */
export function bucketWaitMs(level: number, limit: BucketLimit, amount: number): number {
  if (level + EPSILON >= amount) return 0;
  return limit.ratePerMs > 0 ? Math.ceil((amount - level) / limit.ratePerMs) : Number.POSITIVE_INFINITY;
}

/** A policy change: keep the level (usage survives), clamp it to the new capacity. */
export function bucketRebase(b: BucketState, oldLimit: BucketLimit, limit: BucketLimit, now: number): BucketState {
  return { level: Math.min(limit.burst, bucketLevel(b, oldLimit, now)), at: Math.max(now, b.at) };
}
