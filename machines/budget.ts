/**
 * Budget bookkeeping (PROTOCOL.md "Semantics": Budgets): settled usage,
 * reservations of admitted-but-unreported calls, and period resets.
 *
 * Pure functions over an immutable {@link BudgetState}; every function returns a
 * new object and never mutates its inputs. Time is passed in as `now` (ms since
 * the epoch, UTC).
 *
 * Floating point: `cost` amounts are floats and their sums are kept as they
 * come (no rounding), so `used`/`reserved` may carry tiny binary errors, e.g.
 * 0.1 + 0.2 = 0.30000000000000004. Comparisons against the limit are made on the
 * raw sums; at the exact edge this errs toward rejecting.
 */

import { currentPeriodStart, nextReset } from "./calendar.js";
import type { BudgetPolicy } from "./policy.js";

/** The state of one scope's budget. */
export interface BudgetState {
  /** Settled usage in the current period. */
  used: number;
  /** Sum of the estimates of admitted, not yet settled leases. */
  reserved: number;
  /** Start of the current period (ms since the epoch). */
  periodStart: number;
  /** When the current period ends (ms since the epoch); `null`: never resets. */
  resetAt: number | null;
}

/** One call's usage, as reported (or estimated at admission). */
export interface Usage {
  tokens: number;
  cost: number;
  requests: number;
}

/** Start and end of the period containing `now`, anchored at `previousStart` for rolling periods. */
function inPeriod(used: number, reserved: number, policy: BudgetPolicy, now: number, previousStart?: number): BudgetState {
  const periodStart = currentPeriodStart(policy, now, previousStart);
  return budgetState(used, reserved, periodStart, nextReset(policy, periodStart));
}

/**
 * A budget state written out field by field: V8 builds `{ ...s, reserved }` on a slow path
 * (several times the cost of a literal), and these run on every admission and settlement.
 */
function budgetState(used: number, reserved: number, periodStart: number, resetAt: number | null): BudgetState {
  return { used, reserved, periodStart, resetAt };
}

/**
 * A fresh budget: nothing used or reserved, in the period containing `now`
 * (calendar budgets: the current calendar period; rolling budgets and budgets
 * that never reset: a period starting at `now`).
 *
 * @param policy the budget policy
 * @param now ms since the epoch
 */
export function budgetInit(policy: BudgetPolicy, now: number): BudgetState {
  return inPeriod(0, 0, policy, now);
}

/**
 * Apply the reset if `now >= resetAt`: exactly ONE reset however many periods
 * were skipped. `used` → 0; `reserved` is kept (those calls are still in
 * flight); `periodStart`/`resetAt` move to the period containing `now` (rolling
 * periods stay on the grid anchored at the old `periodStart`). Afterwards
 * `resetAt` is `null` or `> now`, so a second call at the same `now` reports
 * `reset: false`. If `now < resetAt` (or `resetAt` is `null`) the same state
 * object is returned (states are never mutated) with `reset: false`.
 *
 * @param s the current state
 * @param policy the budget policy in force
 * @param now ms since the epoch
 * @returns the advanced state and whether a reset happened
 */
export function budgetAdvance(
  s: BudgetState,
  policy: BudgetPolicy,
  now: number,
): { state: BudgetState; reset: boolean } {
  if (s.resetAt === null || now < s.resetAt) return { state: s, reset: false };
  return { state: inPeriod(0, s.reserved, policy, now, s.periodStart), reset: true };
}

/**
 * The amount of a usage in the budget's unit: `cost` (the default), `tokens`
 * or `requests`. An admission's estimate (no `requests`) is one request.
 *
 * @param policy the budget policy
 * @param u the usage
 */
export function budgetAmount(policy: BudgetPolicy, u: Pick<Usage, "tokens" | "cost"> & { requests?: number }): number {
  switch (policy.unit ?? "cost") {
    case "cost":
      return u.cost;
    case "tokens":
      return u.tokens;
    case "requests":
      return u.requests ?? 1;
  }
}

/**
 * Whether an admission of `amount` fits. Call it on an advanced state (see
 * {@link budgetAdvance}).
 *
 * Rejects when `used + reserved >= limit` (at or over the limit, even for an
 * amount of 0), or when `used + reserved + amount > limit` (the admission's own
 * estimate would cross it). Exactly reaching the limit with the estimate is
 * allowed. A NaN anywhere rejects (fails closed).
 *
 * `remaining` is `max(0, limit - used - reserved)`. On rejection `retryAfterMs`
 * is `resetAt - now` (not below 0), and absent when the budget never resets.
 * Note: an amount larger than the whole limit is rejected in every period; its
 * `retryAfterMs` still points at the next reset.
 *
 * @param s an advanced state
 * @param policy the budget policy
 * @param amount the admission's estimate, in the budget's unit
 * @param now ms since the epoch
 */
export function budgetCheck(
  s: BudgetState,
  policy: BudgetPolicy,
  amount: number,
  now: number,
): { ok: true; remaining: number } | { ok: false; remaining: number; retryAfterMs?: number } {
  const committed = s.used + s.reserved;
  const remaining = Math.max(0, policy.limit - committed);
  // Written as negated `<`/`<=` so that NaN rejects.
  if (!(committed < policy.limit) || !(committed + amount <= policy.limit)) {
    if (s.resetAt === null) return { ok: false, remaining };
    return { ok: false, remaining, retryAfterMs: Math.max(0, s.resetAt - now) };
  }
  return { ok: true, remaining };
}

/**
 * Reserve an admitted call's estimate: `reserved += amount`.
 *
 * @param s the current state
 * @param amount the estimate, in the budget's unit
 */
export function budgetReserve(s: BudgetState, amount: number): BudgetState {
  return budgetState(s.used, s.reserved + amount, s.periodStart, s.resetAt);
}

/**
 * Settle a reserved call with its report: `reserved -= reservedAmount` (never
 * below 0, e.g. when the reservation was already released), `used += actualAmount`.
 *
 * @param s the current state
 * @param reservedAmount the estimate reserved at admission
 * @param actualAmount the reported usage, in the budget's unit
 */
export function budgetSettle(s: BudgetState, reservedAmount: number, actualAmount: number): BudgetState {
  return budgetState(s.used + actualAmount, Math.max(0, s.reserved - reservedAmount), s.periodStart, s.resetAt);
}

/**
 * Count usage that had no reservation (e.g. a report for an unknown or expired
 * lease): `used += amount`.
 *
 * @param s the current state
 * @param amount the usage, in the budget's unit
 */
export function budgetUse(s: BudgetState, amount: number): BudgetState {
  return budgetState(s.used + amount, s.reserved, s.periodStart, s.resetAt);
}

/**
 * The policy changed: keep `used` and `reserved` (a budget half spent stays half
 * spent) and lay the period out under the new policy.
 *
 * 1. If the new policy yields the same `resetAt` from the current `periodStart`
 *    (and, for calendar periods, `periodStart` is on a boundary), the period
 *    definition is effectively unchanged: the state is returned as is (a reset
 *    that is due is left to {@link budgetAdvance}).
 * 2. Otherwise, if `periodStart` is still a valid start under the new policy
 *    (on a boundary for calendar periods, and the period it begins still
 *    contains `now`), it is kept and `resetAt` is recomputed.
 * 3. Otherwise `periodStart`/`resetAt` move to the period containing `now`
 *    (rolling: on the grid anchored at the old `periodStart`).
 *
 * Rebase never zeroes `used`. Call it on a state advanced under the OLD policy
 * (`budgetAdvance(s, oldPolicy, now)`), or a reset that was already due under the
 * old policy may be folded into the new period.
 *
 * @param s the current state (advanced under the old policy)
 * @param policy the new budget policy
 * @param now ms since the epoch
 */
export function budgetRebase(s: BudgetState, policy: BudgetPolicy, now: number): BudgetState {
  // For calendar periods this tests alignment; rolling and never-resetting
  // budgets accept any start (k = 0 of a grid anchored at it).
  const aligned = currentPeriodStart(policy, s.periodStart, s.periodStart) === s.periodStart;
  const resetAt = nextReset(policy, s.periodStart);
  if (aligned && resetAt === s.resetAt) return budgetState(s.used, s.reserved, s.periodStart, s.resetAt);
  if (aligned && (resetAt === null || now < resetAt)) return budgetState(s.used, s.reserved, s.periodStart, resetAt);
  return inPeriod(s.used, s.reserved, policy, now, s.periodStart);
}

/**
 * Admin reset of usage: `used` → 0, `reserved` kept (calls in flight). The new
 * period starts at `now` for rolling budgets (and budgets that never reset);
 * calendar budgets stay in the calendar period containing `now`.
 *
 * @param s the current state
 * @param policy the budget policy
 * @param now ms since the epoch
 */
export function budgetResetUsage(s: BudgetState, policy: BudgetPolicy, now: number): BudgetState {
  return inPeriod(0, s.reserved, policy, now);
}
