import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  HALF_OPEN_RETRY_HINT_MS,
  WINDOW_BUCKETS,
  breakerAdvance,
  breakerCheck,
  breakerInit,
  breakerOnAdmit,
  breakerOnOutcome,
  breakerReset,
  windowTotals,
} from "../../machines/breaker.js";
import type { BreakerState, Outcome } from "../../machines/breaker.js";
import type { BreakerPolicy } from "../../machines/policy.js";

const policy: BreakerPolicy = { errorRate: 0.5, windowMs: 10_000, minRequests: 4, cooldownMs: 5_000, probes: 1 };

/** Report outcomes one after the other at `now`, advancing first as the actor would. */
function report(s: BreakerState, p: BreakerPolicy, outcomes: (Outcome | "expired")[], now: number, wasProbe = false) {
  let state = s;
  const transitions: string[] = [];
  for (const o of outcomes) {
    const a = breakerAdvance(state, p, now);
    if (a.transition) transitions.push(a.transition);
    const r = breakerOnOutcome(a.state, p, o, now, wasProbe);
    if (r.transition) transitions.push(r.transition);
    state = r.state;
  }
  return { state, transitions };
}

function totals(s: BreakerState) {
  if (s.state !== "closed") throw new Error(`expected closed, got ${s.state}`);
  return windowTotals(s.window);
}

/** Open the breaker at `now` with the default policy. */
function opened(now: number, p = policy): BreakerState {
  const { state } = report(breakerInit(), p, ["error", "error", "error", "error"], now);
  expect(state.state).toBe("open");
  return state;
}

/** Open, then advance past the cooldown into half-open. */
function halfOpen(p: BreakerPolicy, at = 0): BreakerState {
  const s = opened(at, p);
  const a = breakerAdvance(s, p, at + p.cooldownMs);
  expect(a.transition).toBe("half_open");
  return a.state;
}

describe("breaker - closed", () => {
  it("starts closed with an empty window and admits", () => {
    const s = breakerInit();
    expect(s).toEqual({ state: "closed", window: [] });
    expect(breakerCheck(s, policy, 0)).toEqual({ ok: true });
  });

  it("opens when minRequests are reached and the failure rate reaches errorRate", () => {
    const { state, transitions } = report(breakerInit(), policy, ["ok", "error", "ok", "error"], 1_000);
    expect(transitions).toEqual(["opened"]);
    expect(state).toEqual({ state: "open", openedAt: 1_000, until: 6_000 });
  });

  it("stays closed below minRequests, however bad the rate", () => {
    const { state, transitions } = report(breakerInit(), policy, ["error", "error", "error"], 0);
    expect(transitions).toEqual([]);
    expect(totals(state)).toEqual({ total: 3, failures: 3 });
  });

  it("stays closed while the failure rate is under errorRate", () => {
    const { state } = report(breakerInit(), policy, ["ok", "ok", "ok", "error", "ok", "error"], 0);
    expect(state.state).toBe("closed"); // 2/6 < 0.5
  });

  it("counts error, timeout and rate_limited as failures", () => {
    const { state } = report(breakerInit(), { ...policy, minRequests: 100 }, ["error", "timeout", "rate_limited", "ok"], 0);
    expect(totals(state)).toEqual({ total: 4, failures: 3 });
  });

  it("does not count cancelled or expired at all", () => {
    const { state } = report(breakerInit(), policy, ["cancelled", "expired", "cancelled", "expired", "error"], 0);
    expect(totals(state)).toEqual({ total: 1, failures: 1 });
  });

  it("with countRateLimited false, 429s count as outcomes but not as failures", () => {
    const p = { ...policy, countRateLimited: false };
    const { state, transitions } = report(breakerInit(), p, ["rate_limited", "rate_limited", "rate_limited", "rate_limited"], 0);
    expect(transitions).toEqual([]);
    expect(totals(state)).toEqual({ total: 4, failures: 0 });
  });

  it("slides: outcomes older than windowMs stop counting", () => {
    // Three failures at t=0, then one at t=10 000: the first three have left the window.
    let { state } = report(breakerInit(), policy, ["error", "error", "error"], 0);
    ({ state } = report(state, policy, ["error"], 10_000));
    expect(state.state).toBe("closed");
    expect(totals(state)).toEqual({ total: 1, failures: 1 });
  });

  it("slides sub-bucket by sub-bucket", () => {
    // windowMs 10 000 → slices of 1 000 ms. Outcomes at 0, 1 000, …, 9 000 all count at 9 999;
    // at 10 000 the slice starting at 0 leaves.
    const p = { ...policy, minRequests: 1_000 };
    let s = breakerInit();
    for (let t = 0; t < 10_000; t += 1_000) s = report(s, p, ["ok"], t).state;
    expect(totals(breakerAdvance(s, p, 9_999).state).total).toBe(10);
    const advanced = breakerAdvance(s, p, 10_000).state;
    expect(totals(advanced).total).toBe(9);
    expect(advanced.state === "closed" && advanced.window.length).toBe(9);
  });

  it("advance returns the same object when nothing slid out", () => {
    const { state } = report(breakerInit(), policy, ["ok"], 0);
    expect(breakerAdvance(state, policy, 500).state).toBe(state);
  });

  it("keeps at most WINDOW_BUCKETS sub-buckets", () => {
    const p = { ...policy, minRequests: 1_000_000 };
    let s = breakerInit();
    for (let t = 0; t < 100_000; t += 137) s = report(s, p, ["ok"], t).state;
    expect(s.state === "closed" && s.window.length).toBeLessThanOrEqual(WINDOW_BUCKETS);
  });

  it("does not open on successes alone, even with errorRate 0", () => {
    const { state } = report(breakerInit(), { ...policy, errorRate: 0 }, ["ok", "ok", "ok", "ok", "ok"], 0);
    expect(state.state).toBe("closed");
  });

  it("admission in closed records nothing", () => {
    const s = breakerInit();
    expect(breakerOnAdmit(s, policy, 0)).toBe(s);
  });
});

describe("breaker - open", () => {
  it("rejects with retryAfterMs until half-open", () => {
    const s = opened(1_000);
    expect(breakerCheck(s, policy, 1_000)).toEqual({ ok: false, retryAfterMs: 5_000 });
    expect(breakerCheck(s, policy, 4_500)).toEqual({ ok: false, retryAfterMs: 1_500 });
  });

  it("moves to half-open once now >= until, not before", () => {
    const s = opened(1_000);
    expect(breakerAdvance(s, policy, 5_999)).toEqual({ state: s });
    expect(breakerAdvance(s, policy, 6_000)).toEqual({
      state: { state: "halfOpen", inFlight: 0, succeeded: 0 },
      transition: "half_open",
    });
  });

  it("ignores outcomes of leases admitted before it opened", () => {
    const s = opened(0);
    for (const o of ["ok", "error", "timeout", "rate_limited", "cancelled", "expired"] as const) {
      expect(breakerOnOutcome(s, policy, o, 100, false)).toEqual({ state: s });
    }
  });
});

describe("breaker - half-open", () => {
  const p3 = { ...policy, probes: 3 };

  it("admits `probes` concurrent calls and rejects the next with a short hint", () => {
    let s = halfOpen(p3);
    for (let i = 0; i < 3; i++) {
      expect(breakerCheck(s, p3, 5_000)).toEqual({ ok: true });
      s = breakerOnAdmit(s, p3, 5_000);
    }
    expect(s).toEqual({ state: "halfOpen", inFlight: 3, succeeded: 0 });
    expect(breakerCheck(s, p3, 5_000)).toEqual({ ok: false, retryAfterMs: HALF_OPEN_RETRY_HINT_MS });
  });

  it("the retry hint is the cooldown when that is shorter", () => {
    const p = { ...p3, cooldownMs: 300 };
    let s = halfOpen(p);
    for (let i = 0; i < 3; i++) s = breakerOnAdmit(s, p, 300);
    expect(breakerCheck(s, p, 300)).toEqual({ ok: false, retryAfterMs: 300 });
  });

  it("closes with an empty window when all probes succeed", () => {
    let s = halfOpen(p3);
    for (let i = 0; i < 3; i++) s = breakerOnAdmit(s, p3, 5_000);
    let r = breakerOnOutcome(s, p3, "ok", 5_100, true);
    expect(r).toEqual({ state: { state: "halfOpen", inFlight: 2, succeeded: 1 } });
    r = breakerOnOutcome(r.state, p3, "ok", 5_200, true);
    expect(r.transition).toBeUndefined();
    r = breakerOnOutcome(r.state, p3, "ok", 5_300, true);
    expect(r).toEqual({ state: { state: "closed", window: [] }, transition: "closed" });
  });

  it("one failing probe opens it again with a new cooldown", () => {
    let s = halfOpen(p3);
    for (let i = 0; i < 3; i++) s = breakerOnAdmit(s, p3, 5_000);
    s = breakerOnOutcome(s, p3, "ok", 5_100, true).state;
    const r = breakerOnOutcome(s, p3, "timeout", 5_200, true);
    expect(r).toEqual({ state: { state: "open", openedAt: 5_200, until: 10_200 }, transition: "opened" });
  });

  it("a probe whose lease expired unreported opens it again", () => {
    const s = breakerOnAdmit(halfOpen(policy), policy, 5_000);
    const r = breakerOnOutcome(s, policy, "expired", 65_000, true);
    expect(r).toEqual({ state: { state: "open", openedAt: 65_000, until: 70_000 }, transition: "opened" });
  });

  it("a cancelled probe only frees its slot", () => {
    const s = breakerOnAdmit(halfOpen(p3), p3, 5_000);
    expect(breakerOnOutcome(s, p3, "cancelled", 5_100, true)).toEqual({
      state: { state: "halfOpen", inFlight: 0, succeeded: 0 },
    });
  });

  it("outcomes of leases admitted before the breaker opened are not probe results", () => {
    const s = breakerOnAdmit(halfOpen(p3), p3, 5_000);
    expect(breakerOnOutcome(s, p3, "error", 5_100, false)).toEqual({ state: s });
    expect(breakerOnOutcome(s, p3, "ok", 5_100, false)).toEqual({ state: s });
    expect(breakerOnOutcome(s, p3, "expired", 5_100, false)).toEqual({ state: s });
  });

  it("with countRateLimited false a probe's 429 frees the slot without reopening", () => {
    const p = { ...p3, countRateLimited: false };
    const s = breakerOnAdmit(halfOpen(p), p, 5_000);
    expect(breakerOnOutcome(s, p, "rate_limited", 5_100, true)).toEqual({
      state: { state: "halfOpen", inFlight: 0, succeeded: 0 },
    });
  });

  it("with countRateLimited true a probe's 429 reopens", () => {
    const s = breakerOnAdmit(halfOpen(policy), policy, 5_000);
    expect(breakerOnOutcome(s, policy, "rate_limited", 5_100, true).transition).toBe("opened");
  });

  it("a stray probe from an earlier half-open spell never drives inFlight below 0", () => {
    const s = halfOpen(p3);
    expect(breakerOnOutcome(s, p3, "cancelled", 5_100, true).state).toEqual({
      state: "halfOpen",
      inFlight: 0,
      succeeded: 0,
    });
  });
});

describe("breaker - reset", () => {
  it("returns to closed with an empty window from any state", () => {
    expect(breakerReset()).toEqual({ state: "closed", window: [] });
    const s = breakerReset();
    expect(breakerCheck(s, policy, 0)).toEqual({ ok: true });
    // and counting starts afresh
    expect(totals(report(s, policy, ["error"], 0).state)).toEqual({ total: 1, failures: 1 });
  });
});

describe("breaker - properties", () => {
  const outcome = fc.constantFrom<Outcome | "expired">("ok", "rate_limited", "error", "timeout", "cancelled", "expired");

  it("the closed window never counts more than the outcomes reported within the last windowMs (+ one sub-bucket)", () => {
    fc.assert(
      fc.property(
        fc.record({
          windowMs: fc.integer({ min: 10, max: 5_000 }),
          minRequests: fc.integer({ min: 1, max: 50 }),
          errorRate: fc.double({ min: 0.01, max: 1, noNaN: true }),
        }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2_000 }), outcome), { maxLength: 200 }),
        ({ windowMs, minRequests, errorRate }, steps) => {
          const p: BreakerPolicy = { windowMs, minRequests, errorRate, cooldownMs: 1_000, probes: 1 };
          const slice = windowMs / WINDOW_BUCKETS;
          let s = breakerInit();
          let now = 0;
          // Counted outcomes reported since the breaker last became closed.
          let log: number[] = [];
          for (const [dt, o] of steps) {
            now += dt;
            const a = breakerAdvance(s, p, now);
            s = a.state;
            const wasProbe = s.state === "halfOpen";
            if (wasProbe) s = breakerOnAdmit(s, p, now);
            const wasClosed = s.state === "closed";
            const r = breakerOnOutcome(s, p, o, now, wasProbe);
            s = r.state;
            if (wasClosed && o !== "cancelled" && o !== "expired") log.push(now);
            if (s.state !== "closed") log = [];
            if (r.transition === "closed") log = [];
            if (s.state === "closed") {
              const { total, failures } = windowTotals(s.window);
              const recent = log.filter((t) => t > now - windowMs - slice).length;
              expect(total).toBeLessThanOrEqual(recent);
              // …and it still holds everything from the last windowMs - one sub-bucket.
              expect(total).toBeGreaterThanOrEqual(log.filter((t) => t > now - windowMs + slice).length);
              expect(failures).toBeLessThanOrEqual(total);
              expect(s.window.length).toBeLessThanOrEqual(WINDOW_BUCKETS);
            }
          }
        },
      ),
      { seed: 42, numRuns: 300 },
    );
  });
});
