import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  budgetAdvance,
  budgetAmount,
  budgetCheck,
  budgetInit,
  budgetRebase,
  budgetReserve,
  budgetResetUsage,
  budgetSettle,
  budgetUse,
  type BudgetState,
} from "../../machines/budget.js";
import type { BudgetPolicy } from "../../machines/policy.js";

const H = 3_600_000;
const D = 86_400_000;
const iso = (s: string): number => Date.parse(s);
const T0 = iso("2026-03-15T13:45:00Z"); // a Sunday

describe("budgetInit", () => {
  it("calendar: the calendar period containing now", () => {
    const s = budgetInit({ limit: 10, period: "day", calendar: true }, T0);
    expect(s).toEqual({ used: 0, reserved: 0, periodStart: iso("2026-03-15T00:00:00Z"), resetAt: iso("2026-03-16T00:00:00Z") });
    const w = budgetInit({ limit: 10, period: "week", calendar: true }, T0);
    expect(w.periodStart).toBe(iso("2026-03-09T00:00:00Z"));
    expect(w.resetAt).toBe(iso("2026-03-16T00:00:00Z"));
  });

  it("rolling: a period starting now", () => {
    expect(budgetInit({ limit: 10, periodMs: 5000 }, T0)).toEqual({ used: 0, reserved: 0, periodStart: T0, resetAt: T0 + 5000 });
    expect(budgetInit({ limit: 10, period: "hour" }, T0).resetAt).toBe(T0 + H);
  });

  it("no period: never resets", () => {
    expect(budgetInit({ limit: 10 }, T0)).toEqual({ used: 0, reserved: 0, periodStart: T0, resetAt: null });
  });
});

describe("budgetAdvance", () => {
  it("does nothing before resetAt", () => {
    const p: BudgetPolicy = { limit: 10, periodMs: 1000 };
    const s = budgetUse(budgetInit(p, 0), 3);
    const r = budgetAdvance(s, p, 999);
    expect(r.reset).toBe(false);
    // Unchanged: the same (immutable) object, so a scope can tell nothing moved.
    expect(r.state).toBe(s);
  });

  it("resets at exactly resetAt", () => {
    const p: BudgetPolicy = { limit: 10, periodMs: 1000 };
    const r = budgetAdvance(budgetUse(budgetInit(p, 0), 3), p, 1000);
    expect(r.reset).toBe(true);
    expect(r.state).toEqual({ used: 0, reserved: 0, periodStart: 1000, resetAt: 2000 });
  });

  it("a clock jumping over several periods resets exactly once", () => {
    const p: BudgetPolicy = { limit: 10, periodMs: 1000 };
    const s = budgetUse(budgetInit(p, 500), 7);
    const first = budgetAdvance(s, p, 500 + 5 * 1000 + 250);
    expect(first.reset).toBe(true);
    expect(first.state).toEqual({ used: 0, reserved: 0, periodStart: 5500, resetAt: 6500 });
    const second = budgetAdvance(first.state, p, 500 + 5 * 1000 + 250);
    expect(second.reset).toBe(false);
    expect(second.state).toEqual(first.state);
  });

  it("calendar month across a year change, several months skipped", () => {
    const p: BudgetPolicy = { limit: 10, period: "month", calendar: true };
    const s = budgetUse(budgetInit(p, iso("2026-10-20T00:00:00Z")), 4);
    expect(s.resetAt).toBe(iso("2026-11-01T00:00:00Z"));
    const now = iso("2027-02-10T00:00:00Z");
    const r = budgetAdvance(s, p, now);
    expect(r.reset).toBe(true);
    expect(r.state).toEqual({ used: 0, reserved: 0, periodStart: iso("2027-02-01T00:00:00Z"), resetAt: iso("2027-03-01T00:00:00Z") });
    expect(budgetAdvance(r.state, p, now).reset).toBe(false);
  });

  it("calendar week resets on the Sunday→Monday crossing", () => {
    const p: BudgetPolicy = { limit: 10, period: "week", calendar: true };
    const s = budgetUse(budgetInit(p, iso("2026-03-15T23:59:59.999Z")), 4);
    expect(budgetAdvance(s, p, iso("2026-03-15T23:59:59.999Z")).reset).toBe(false);
    const r = budgetAdvance(s, p, iso("2026-03-16T00:00:00Z"));
    expect(r.reset).toBe(true);
    expect(r.state.periodStart).toBe(iso("2026-03-16T00:00:00Z"));
    expect(r.state.resetAt).toBe(iso("2026-03-23T00:00:00Z"));
  });

  it("rolling month stays on the addPeriod grid", () => {
    const p: BudgetPolicy = { limit: 10, period: "month" };
    const s = budgetInit(p, iso("2028-01-31T12:00:00Z"));
    expect(s.resetAt).toBe(iso("2028-02-29T12:00:00Z"));
    const r = budgetAdvance(s, p, iso("2028-04-01T00:00:00Z"));
    expect(r.reset).toBe(true);
    expect(r.state.periodStart).toBe(iso("2028-03-29T12:00:00Z"));
    expect(r.state.resetAt).toBe(iso("2028-04-29T12:00:00Z"));
  });

  it("reservations survive resets", () => {
    const p: BudgetPolicy = { limit: 10, periodMs: 1000 };
    let s = budgetReserve(budgetUse(budgetInit(p, 0), 2), 3);
    s = budgetAdvance(s, p, 3500).state;
    expect(s.used).toBe(0);
    expect(s.reserved).toBe(3);
    s = budgetSettle(s, 3, 2.5);
    expect(s).toMatchObject({ used: 2.5, reserved: 0 });
  });

  it("a budget with no period never resets", () => {
    const p: BudgetPolicy = { limit: 10 };
    const s = budgetUse(budgetInit(p, 0), 9);
    const r = budgetAdvance(s, p, 1e13);
    expect(r.reset).toBe(false);
    expect(r.state.used).toBe(9);
  });
});

describe("budgetAmount", () => {
  const u = { tokens: 1350, cost: 0.0135, requests: 1 };
  it("defaults to cost", () => expect(budgetAmount({ limit: 1 }, u)).toBe(0.0135));
  it("selects the unit", () => {
    expect(budgetAmount({ limit: 1, unit: "cost" }, u)).toBe(0.0135);
    expect(budgetAmount({ limit: 1, unit: "tokens" }, u)).toBe(1350);
    expect(budgetAmount({ limit: 1, unit: "requests" }, u)).toBe(1);
  });
});

describe("budgetCheck", () => {
  const p: BudgetPolicy = { limit: 10, periodMs: 1000 };
  const at = (used: number, reserved: number, resetAt: number | null = 1000): BudgetState => ({ used, reserved, periodStart: 0, resetAt });

  it("admits below the limit, reporting what remains", () => {
    expect(budgetCheck(at(3, 2), p, 4, 100)).toEqual({ ok: true, remaining: 5 });
  });

  it("admits an estimate that lands exactly on the limit", () => {
    expect(budgetCheck(at(3, 2), p, 5, 100)).toEqual({ ok: true, remaining: 5 });
  });

  it("rejects at exactly the limit, even with a zero estimate", () => {
    expect(budgetCheck(at(6, 4), p, 0, 100)).toEqual({ ok: false, remaining: 0, retryAfterMs: 900 });
  });

  it("rejects over the limit (reports above estimates)", () => {
    expect(budgetCheck(at(12, 0), p, 0, 250)).toEqual({ ok: false, remaining: 0, retryAfterMs: 750 });
  });

  it("rejects an estimate that would cross the limit", () => {
    expect(budgetCheck(at(3, 2), p, 5.0001, 100)).toEqual({ ok: false, remaining: 5, retryAfterMs: 900 });
  });

  it("a budget that never resets has no retryAfterMs", () => {
    const r = budgetCheck(at(10, 0, null), { limit: 10 }, 1, 100);
    expect(r).toEqual({ ok: false, remaining: 0 });
    expect("retryAfterMs" in r).toBe(false);
  });

  it("a zero limit rejects everything", () => {
    expect(budgetCheck(at(0, 0), { limit: 0, periodMs: 1000 }, 0, 0).ok).toBe(false);
  });

  it("fails closed on NaN", () => {
    expect(budgetCheck(at(0, 0), p, Number.NaN, 0).ok).toBe(false);
  });
});

describe("reserve / settle / use", () => {
  it("never mutate their input", () => {
    const s = Object.freeze(budgetInit({ limit: 10, periodMs: 1000 }, 0));
    expect(budgetReserve(s, 2)).toMatchObject({ reserved: 2, used: 0 });
    expect(budgetUse(s, 2)).toMatchObject({ reserved: 0, used: 2 });
    expect(budgetSettle(budgetReserve(s, 2), 2, 3)).toMatchObject({ reserved: 0, used: 3 });
    expect(s).toMatchObject({ used: 0, reserved: 0 });
  });

  it("settle never takes reserved below 0", () => {
    const s = budgetReserve(budgetInit({ limit: 10 }, 0), 1);
    expect(budgetSettle(s, 5, 2)).toMatchObject({ reserved: 0, used: 2 });
  });

  it("keeps float sums unrounded", () => {
    const s = budgetUse(budgetUse(budgetInit({ limit: 1 }, 0), 0.1), 0.2);
    expect(s.used).toBe(0.1 + 0.2);
  });
});

describe("budgetRebase", () => {
  it("keeps state when the period definition is unchanged (even equivalent spellings)", () => {
    const p: BudgetPolicy = { limit: 10, period: "day" };
    const s = budgetReserve(budgetUse(budgetInit(p, T0), 4), 1);
    expect(budgetRebase(s, { ...p, limit: 20 }, T0 + 5)).toEqual(s);
    expect(budgetRebase(s, { limit: 20, periodMs: D }, T0 + 5)).toEqual(s);
  });

  it("unchanged definition on a stale state leaves the due reset to budgetAdvance", () => {
    const p: BudgetPolicy = { limit: 10, periodMs: 1000 };
    const s = budgetUse(budgetInit(p, 0), 4);
    const r = budgetRebase(s, { limit: 5, periodMs: 1000 }, 2500);
    expect(r).toEqual(s);
    expect(budgetAdvance(r, p, 2500)).toEqual({ reset: true, state: { used: 0, reserved: 0, periodStart: 2000, resetAt: 3000 } });
  });

  it("keeps a periodStart that is still valid, recomputing resetAt", () => {
    // Rolling day → rolling week, 3 hours in: same start, later end, usage kept.
    const s = budgetReserve(budgetUse(budgetInit({ limit: 10, period: "day" }, T0), 4), 2);
    const r = budgetRebase(s, { limit: 10, period: "week" }, T0 + 3 * H);
    expect(r).toEqual({ used: 4, reserved: 2, periodStart: T0, resetAt: T0 + 7 * D });
  });

  it("calendar day → calendar week on a Sunday moves to Monday's week start, keeping usage", () => {
    const s = budgetUse(budgetInit({ limit: 10, period: "day", calendar: true }, T0), 4);
    const r = budgetRebase(s, { limit: 10, period: "week", calendar: true }, T0);
    expect(r).toEqual({ used: 4, reserved: 0, periodStart: iso("2026-03-09T00:00:00Z"), resetAt: iso("2026-03-16T00:00:00Z") });
  });

  it("calendar day → calendar week on a Monday keeps the start", () => {
    const monday = iso("2026-03-16T08:00:00Z");
    const s = budgetUse(budgetInit({ limit: 10, period: "day", calendar: true }, monday), 4);
    const r = budgetRebase(s, { limit: 10, period: "week", calendar: true }, monday);
    expect(r).toEqual({ used: 4, reserved: 0, periodStart: iso("2026-03-16T00:00:00Z"), resetAt: iso("2026-03-23T00:00:00Z") });
  });

  it("a shorter rolling period whose first period is over moves along the old grid, keeping usage", () => {
    const s = budgetUse(budgetInit({ limit: 10, period: "day" }, T0), 4);
    const r = budgetRebase(s, { limit: 10, periodMs: H }, T0 + 5 * H + 10);
    expect(r).toEqual({ used: 4, reserved: 0, periodStart: T0 + 5 * H, resetAt: T0 + 6 * H });
  });

  it("period removed: never resets; period added: starts its grid at the old start", () => {
    const s = budgetUse(budgetInit({ limit: 10, periodMs: 1000 }, 0), 4);
    expect(budgetRebase(s, { limit: 10 }, 500)).toEqual({ used: 4, reserved: 0, periodStart: 0, resetAt: null });
    const n = budgetUse(budgetInit({ limit: 10 }, 0), 4);
    expect(budgetRebase(n, { limit: 10, periodMs: 1000 }, 500)).toEqual({ used: 4, reserved: 0, periodStart: 0, resetAt: 1000 });
    expect(budgetRebase(n, { limit: 10, periodMs: 1000 }, 2500)).toEqual({ used: 4, reserved: 0, periodStart: 2000, resetAt: 3000 });
  });
});

describe("budgetResetUsage", () => {
  it("rolling: used → 0, reservations kept, a new period from now", () => {
    const p: BudgetPolicy = { limit: 10, periodMs: 1000 };
    const s = budgetReserve(budgetUse(budgetInit(p, 0), 4), 2);
    expect(budgetResetUsage(s, p, 700)).toEqual({ used: 0, reserved: 2, periodStart: 700, resetAt: 1700 });
  });

  it("calendar: used → 0, the calendar period is unchanged", () => {
    const p: BudgetPolicy = { limit: 10, period: "day", calendar: true };
    const s = budgetUse(budgetInit(p, T0), 4);
    expect(budgetResetUsage(s, p, T0 + H)).toEqual({ ...s, used: 0 });
  });

  it("no period: used → 0, still never resets", () => {
    const s = budgetUse(budgetInit({ limit: 10 }, 0), 4);
    expect(budgetResetUsage(s, { limit: 10 }, 50)).toEqual({ used: 0, reserved: 0, periodStart: 50, resetAt: null });
  });
});

// ---------------------------------------------------------------------------
// Property: a random sequence of operations against a reference model.

type Op =
  | { op: "reserve"; amount: number }
  | { op: "settle"; pick: number; actual: number }
  | { op: "use"; amount: number }
  | { op: "advance"; dt: number };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("reserve" as const), amount: fc.integer({ min: 0, max: 1000 }) }),
  fc.record({ op: fc.constant("settle" as const), pick: fc.nat(), actual: fc.integer({ min: 0, max: 1000 }) }),
  fc.record({ op: fc.constant("use" as const), amount: fc.integer({ min: 0, max: 1000 }) }),
  fc.record({
    op: fc.constant("advance" as const),
    dt: fc.oneof(fc.integer({ min: 0, max: 2 * H }), fc.integer({ min: 0, max: 40 * D })),
  }),
);

/** Policies whose period index is easy to compute independently of the implementation. */
const arbPolicy: fc.Arbitrary<{ policy: BudgetPolicy; index: (t0: number, now: number) => number }> = fc.oneof(
  fc.integer({ min: 1, max: 3 * D }).map((periodMs) => ({
    policy: { limit: 1e9, unit: "tokens" as const, periodMs },
    index: (t0: number, now: number) => Math.floor((now - t0) / periodMs),
  })),
  fc.constantFrom(
    { policy: { limit: 1e9, period: "hour" as const, calendar: true }, index: (_: number, now: number) => Math.floor(now / H) },
    { policy: { limit: 1e9, period: "day" as const, calendar: true }, index: (_: number, now: number) => Math.floor(now / D) },
    {
      policy: { limit: 1e9, period: "month" as const, calendar: true },
      index: (_: number, now: number) => new Date(now).getUTCFullYear() * 12 + new Date(now).getUTCMonth(),
    },
    { policy: { limit: 1e9 }, index: () => 0 },
  ),
);

describe("property: used and reserved match a reference model", () => {
  it("holds for random operation sequences", () => {
    fc.assert(
      fc.property(
        arbPolicy,
        fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2100, 0, 1) }),
        fc.array(arbOp, { maxLength: 60 }),
        ({ policy, index }, t0, ops) => {
          let now = t0;
          let s = budgetInit(policy, now);
          // Reference model.
          let used = 0;
          const outstanding: number[] = [];
          let period = index(t0, now);

          for (const o of ops) {
            switch (o.op) {
              case "reserve":
                s = budgetReserve(s, o.amount);
                outstanding.push(o.amount);
                break;
              case "settle": {
                if (outstanding.length === 0) break;
                const [amount] = outstanding.splice(o.pick % outstanding.length, 1);
                s = budgetSettle(s, amount, o.actual);
                used += o.actual;
                break;
              }
              case "use":
                s = budgetUse(s, o.amount);
                used += o.amount;
                break;
              case "advance": {
                now += o.dt;
                const r = budgetAdvance(s, policy, now);
                const p = index(t0, now);
                expect(r.reset).toBe(p !== period);
                if (p !== period) used = 0;
                period = p;
                s = r.state;
                // Idempotent at the same instant.
                expect(budgetAdvance(s, policy, now)).toEqual({ state: s, reset: false });
                expect(s.periodStart).toBeLessThanOrEqual(now);
                if (s.resetAt !== null) expect(s.resetAt).toBeGreaterThan(now);
                break;
              }
            }
            expect(s.used).toBe(used);
            expect(s.reserved).toBe(outstanding.reduce((a, b) => a + b, 0));
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
