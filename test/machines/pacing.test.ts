import { describe, expect, it } from "vitest";
import { pacingDelay, pacingInit, pacingOnOutcome, pacingReset, pacingTake } from "../../machines/pacing.js";
import type { PacingState } from "../../machines/pacing.js";
import type { AdaptivePolicy } from "../../machines/policy.js";

const policy: AdaptivePolicy = { baseMs: 200, maxMs: 5_000, factor: 2, recovery: 0.8, recoverAfter: 5 };

function okTimes(s: PacingState, n: number, now = 0, p = policy) {
  let state = s;
  const changes: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = pacingOnOutcome(state, p, "ok", undefined, now);
    if (r.changed) changes.push(r.state.intervalMs);
    state = r.state;
  }
  return { state, changes };
}

describe("pacing - backoff on 429", () => {
  it("starts unpaced", () => {
    expect(pacingInit()).toEqual({ intervalMs: 0, okStreak: 0, nextSlotAt: 0, grownAt: null });
    expect(pacingDelay(pacingInit(), 1_000)).toBe(0);
  });

  it("grows 0 → 200 → 400 → 800 → 1600 → 3200 → 5000 (cap) and stays capped, one 429 per interval", () => {
    let s = pacingInit();
    let now = 0;
    const seen = [s.intervalMs];
    const changed: boolean[] = [];
    for (let i = 0; i < 7; i++) {
      const r = pacingOnOutcome(s, policy, "rate_limited", undefined, now);
      seen.push(r.state.intervalMs);
      changed.push(r.changed);
      s = r.state;
      now += s.intervalMs;
    }
    expect(seen).toEqual([0, 200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
    expect(changed).toEqual([true, true, true, true, true, true, false]);
  });

  it("grows once for a burst of 429s within one interval: they are one congestion signal", () => {
    let s = pacingOnOutcome(pacingInit(), policy, "rate_limited", undefined, 1_000).state;
    for (const t of [1_000, 1_050, 1_199]) s = pacingOnOutcome(s, policy, "rate_limited", undefined, t).state;
    expect(s.intervalMs).toBe(200);
    s = pacingOnOutcome(s, policy, "rate_limited", undefined, 1_200).state;
    expect(s.intervalMs).toBe(400);
  });

  it("a 429 restarts the ok streak and holds the next slot at least one interval away", () => {
    let s: PacingState = { intervalMs: 400, okStreak: 3, nextSlotAt: 0, grownAt: null };
    s = pacingOnOutcome(s, policy, "rate_limited", undefined, 10_000).state;
    expect(s).toEqual({ intervalMs: 800, okStreak: 0, nextSlotAt: 10_800, grownAt: 10_000 });
    expect(pacingDelay(s, 10_000)).toBe(800);
  });

  it("a 429 never pulls an already later slot earlier", () => {
    const s: PacingState = { intervalMs: 200, okStreak: 0, nextSlotAt: 50_000, grownAt: null };
    expect(pacingOnOutcome(s, policy, "rate_limited", undefined, 10_000).state.nextSlotAt).toBe(50_000);
  });

  it("takes the upstream's retry-after as a pause, not as the new spacing", () => {
    const r = pacingOnOutcome(pacingInit(), policy, "rate_limited", 1_500, 0);
    expect(r).toEqual({ state: { intervalMs: 200, okStreak: 0, nextSlotAt: 1_500, grownAt: 0 }, changed: true });
    // Nothing goes before the pause ends; after it, calls are one interval apart.
    let s = r.state;
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      delays.push(pacingDelay(s, 100));
      s = pacingTake(s, 100);
    }
    expect(delays).toEqual([1_400, 1_600, 1_800]);
  });

  it("honours a retry-after even beyond maxMs: it is the upstream's word", () => {
    const r = pacingOnOutcome(pacingInit(), policy, "rate_limited", 30_000, 0);
    expect(r.state.nextSlotAt).toBe(30_000);
    expect(r.state.intervalMs).toBe(200);
  });

  it("a shorter upstream retry-after changes nothing", () => {
    const s: PacingState = { intervalMs: 800, okStreak: 0, nextSlotAt: 0, grownAt: null };
    expect(pacingOnOutcome(s, policy, "rate_limited", 100, 0).state).toEqual({ intervalMs: 1_600, okStreak: 0, nextSlotAt: 1_600, grownAt: 0 });
  });
});

describe("pacing - recovery", () => {
  it("shrinks ×0.8 after 5 consecutive ok reports, not before", () => {
    const s: PacingState = { intervalMs: 1_000, okStreak: 0, nextSlotAt: 0, grownAt: null };
    const four = okTimes(s, 4);
    expect(four.state).toEqual({ intervalMs: 1_000, okStreak: 4, nextSlotAt: 0, grownAt: null });
    expect(four.changes).toEqual([]);
    const r = pacingOnOutcome(four.state, policy, "ok", undefined, 0);
    expect(r).toEqual({ state: { intervalMs: 800, okStreak: 0, nextSlotAt: 0, grownAt: null }, changed: true });
    // and again after the next five
    expect(okTimes(r.state, 5).changes).toEqual([640]);
  });

  it("drops to 0 once the interval falls below 1 ms", () => {
    // 1.2 × 0.8 = 0.96 < 1 → 0
    const s: PacingState = { intervalMs: 1.2, okStreak: 0, nextSlotAt: 0, grownAt: null };
    const { state, changes } = okTimes(s, 5);
    expect(changes).toEqual([0]);
    expect(state.intervalMs).toBe(0);
  });

  it("from the cap, reaches 0 after enough ok reports", () => {
    const s: PacingState = { intervalMs: 5_000, okStreak: 0, nextSlotAt: 0, grownAt: null };
    // 5000 × 0.8^n < 1 ⇔ n > ln(5000)/ln(1.25) ≈ 38.17 → 39 shrinks of 5 reports each.
    expect(okTimes(s, 38 * 5).state.intervalMs).toBeGreaterThan(0);
    expect(okTimes(s, 39 * 5).state.intervalMs).toBe(0);
  });

  it("error and timeout break the ok streak without changing the interval", () => {
    for (const o of ["error", "timeout"] as const) {
      const s: PacingState = { intervalMs: 1_000, okStreak: 4, nextSlotAt: 7, grownAt: null };
      const r = pacingOnOutcome(s, policy, o, undefined, 0);
      expect(r).toEqual({ state: { intervalMs: 1_000, okStreak: 0, nextSlotAt: 7, grownAt: null }, changed: false });
      expect(okTimes(r.state, 4).changes).toEqual([]);
    }
  });

  it("cancelled changes nothing", () => {
    const s: PacingState = { intervalMs: 1_000, okStreak: 4, nextSlotAt: 7, grownAt: null };
    expect(pacingOnOutcome(s, policy, "cancelled", undefined, 0)).toEqual({ state: s, changed: false });
  });

  it("ok while unpaced keeps the very same state", () => {
    const s = pacingInit();
    expect(pacingOnOutcome(s, policy, "ok", undefined, 0).state).toBe(s);
  });
});

describe("pacing - spacing admissions", () => {
  it("10 admissions at the same instant get delays 0, I, 2I, …", () => {
    // A 429 at t=0 sets I = 200 and holds the next slot at 200; at t=200 ten callers arrive together.
    let s = pacingOnOutcome(pacingInit(), policy, "rate_limited", undefined, 0).state;
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      delays.push(pacingDelay(s, 200));
      s = pacingTake(s, 200);
    }
    expect(delays).toEqual([0, 200, 400, 600, 800, 1_000, 1_200, 1_400, 1_600, 1_800]);
    expect(s.nextSlotAt).toBe(2_200);
  });

  it("admissions right after the 429 wait at least one interval", () => {
    let s = pacingOnOutcome(pacingInit(), policy, "rate_limited", undefined, 0).state;
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      delays.push(pacingDelay(s, 0));
      s = pacingTake(s, 0);
    }
    expect(delays).toEqual([200, 400, 600]);
  });

  it("an idle gap does not bank slots: the next call after a pause waits 0, then I", () => {
    let s: PacingState = { intervalMs: 500, okStreak: 0, nextSlotAt: 1_000, grownAt: null };
    expect(pacingDelay(s, 10_000)).toBe(0);
    s = pacingTake(s, 10_000);
    expect(s.nextSlotAt).toBe(10_500);
    expect(pacingDelay(s, 10_000)).toBe(500);
  });

  it("unpaced: taking a slot changes nothing and nobody waits", () => {
    const s: PacingState = { intervalMs: 0, okStreak: 0, nextSlotAt: 9_999, grownAt: null };
    expect(pacingTake(s, 0)).toBe(s);
    expect(pacingDelay(s, 0)).toBe(0);
  });

  it("reset returns to unpaced", () => {
    expect(pacingReset()).toEqual(pacingInit());
  });
});
