import { describe, expect, it } from "vitest";
import { createActor } from "xstate";
import type { Outcome } from "../../machines/breaker.js";
import { type ScopePolicy, resolveLimits } from "../../machines/policy.js";
import { type Demand, type ScopeNotice, type Settlement, scopeCheck } from "../../machines/scope.js";
import { scopeMachine } from "../../machines/scopeMachine.js";

const T0 = Date.UTC(2026, 0, 1, 12); // noon UTC
const usage = (cost: number, tokens = 0) => ({ tokens, cost, requests: 1 });
const demand = (cost = 0, tokens = 0): Demand => ({ tokens, cost });

/** A started scope actor on virtual time, with every emitted notice collected. */
function scope(name: string, policy: ScopePolicy, now = T0) {
  const actor = createActor(scopeMachine, { input: { scope: name, limits: resolveLimits(policy), now } });
  const notices: ScopeNotice[] = [];
  actor.on("*", (n) => notices.push(n as ScopeNotice));
  actor.start();
  return { actor, notices, ctx: () => actor.getSnapshot().context, state: () => actor.getSnapshot().value };
}

function settlement(outcome: Outcome | "expired", over: Partial<Settlement> = {}): Settlement {
  return { estimate: usage(0), actual: usage(0), outcome, held: false, probe: false, ...over };
}

const breakerPolicy: ScopePolicy = {
  breaker: { errorRate: 0.5, windowMs: 10_000, minRequests: 4, cooldownMs: 5_000, probes: 1 },
};

describe("scope actor - admit, settle, use", () => {
  it("an admission takes from every bucket, holds a slot and reserves the budget", () => {
    const s = scope("key:acme", { rpm: 60, tpm: 10_000, concurrency: 2, budget: { limit: 10 } });
    s.actor.send({ type: "admit", demand: demand(2.5, 1_200), held: true, now: T0 });
    const c = s.ctx();
    expect(c.buckets.rpm).toEqual({ level: 59, at: T0 });
    expect(c.buckets.tpm).toEqual({ level: 8_800, at: T0 });
    expect(c.held).toBe(1);
    expect(c.budgets[0]).toMatchObject({ used: 0, reserved: 2.5 });
    expect(c.lastActiveAt).toBe(T0);
  });

  it("the report settles the reservation to the actual cost and frees the slot", () => {
    const s = scope("key:acme", { tpm: 10_000, concurrency: 2, budget: { limit: 10 } });
    s.actor.send({ type: "admit", demand: demand(2.5, 1_200), held: true, now: T0 });
    s.actor.send({
      type: "settle",
      now: T0,
      settlement: settlement("ok", { estimate: usage(2.5, 1_200), actual: usage(3, 1_500), held: true }),
    });
    const c = s.ctx();
    expect(c.held).toBe(0);
    expect(c.budgets[0]).toMatchObject({ used: 3, reserved: 0 });
    // 300 tokens more than estimated come out of the token bucket too.
    expect(c.buckets.tpm!.level).toBe(8_500);
  });

  it("usage with no lease is counted, never dropped", () => {
    const s = scope("key:acme", { tpm: 10_000, budget: { limit: 10 } });
    s.actor.send({ type: "use", usage: usage(1.25, 400), now: T0 });
    expect(s.ctx().budgets[0]).toMatchObject({ used: 1.25, reserved: 0 });
    expect(s.ctx().buckets.tpm!.level).toBe(9_600);
    expect(s.ctx().held).toBe(0);
  });

  it("a reset of usage refills buckets and zeroes the budget, keeping reservations", () => {
    const s = scope("key:acme", { rpm: 2, budget: { limit: 10, periodMs: 60_000 } });
    s.actor.send({ type: "admit", demand: demand(4), held: false, now: T0 });
    s.actor.send({ type: "use", usage: usage(3), now: T0 });
    s.actor.send({ type: "reset", what: "usage", now: T0 + 10 });
    expect(s.ctx().buckets.rpm).toEqual({ level: 2, at: T0 + 10 });
    expect(s.ctx().budgets[0]).toEqual({ used: 0, reserved: 4, periodStart: T0 + 10, resetAt: T0 + 60_010 });
    expect(s.notices).toContainEqual(expect.objectContaining({ type: "budget.reset", by: "admin" }));
  });
});

describe("scope actor - the state value follows the breaker", () => {
  it("closed → open on failures, open → halfOpen after the cooldown, halfOpen → closed on a good probe", () => {
    const s = scope("model:gpt-4o", breakerPolicy);
    expect(s.state()).toBe("closed");

    // Two ok, two errors: 4 reports at a 50% failure rate.
    for (const o of ["ok", "ok", "error"] as const) s.actor.send({ type: "settle", settlement: settlement(o), now: T0 });
    expect(s.state()).toBe("closed");
    s.actor.send({ type: "settle", settlement: settlement("timeout"), now: T0 + 100 });
    expect(s.state()).toBe("open");
    expect(s.notices.map((n) => n.type)).toEqual(["breaker.opened"]);

    // Open: the check refuses circuit_open until the cooldown has run.
    const v = scopeCheck(s.ctx(), demand(), T0 + 1_100);
    expect(v).toMatchObject({ ok: false, reason: "circuit_open", retryAfterMs: 4_000 });

    s.actor.send({ type: "tick", now: T0 + 5_099 });
    expect(s.state()).toBe("open");
    s.actor.send({ type: "tick", now: T0 + 5_100 });
    expect(s.state()).toBe("halfOpen");

    // One probe goes out and comes back fine.
    s.actor.send({ type: "admit", demand: demand(), held: false, now: T0 + 5_200 });
    expect(s.ctx().breaker).toEqual({ state: "halfOpen", inFlight: 1, succeeded: 0 });
    expect(scopeCheck(s.ctx(), demand(), T0 + 5_200)).toMatchObject({ ok: false, reason: "circuit_open" });
    s.actor.send({ type: "settle", settlement: settlement("ok", { probe: true }), now: T0 + 6_000 });
    expect(s.state()).toBe("closed");
    expect(s.notices.map((n) => n.type)).toEqual(["breaker.opened", "breaker.half_open", "breaker.closed"]);
  });

  it("a failed probe opens it again for a new cooldown", () => {
    const s = scope("model:gpt-4o", breakerPolicy);
    for (let i = 0; i < 4; i++) s.actor.send({ type: "settle", settlement: settlement("error"), now: T0 });
    s.actor.send({ type: "tick", now: T0 + 5_000 });
    s.actor.send({ type: "admit", demand: demand(), held: false, now: T0 + 5_000 });
    s.actor.send({ type: "settle", settlement: settlement("rate_limited", { probe: true }), now: T0 + 7_000 });
    expect(s.state()).toBe("open");
    expect(s.ctx().breaker).toMatchObject({ state: "open", until: T0 + 12_000 });
  });

  it("an admin reset closes an open breaker at once", () => {
    const s = scope("model:gpt-4o", breakerPolicy);
    for (let i = 0; i < 4; i++) s.actor.send({ type: "settle", settlement: settlement("error"), now: T0 });
    expect(s.state()).toBe("open");
    s.actor.send({ type: "reset", what: "breaker", now: T0 + 1 });
    expect(s.state()).toBe("closed");
    expect(s.notices.at(-1)).toEqual({ type: "breaker.closed", by: "admin" });
  });

  it("a scope without a breaker stays closed whatever is reported", () => {
    const s = scope("key:acme", { rpm: 10 });
    for (let i = 0; i < 10; i++) s.actor.send({ type: "settle", settlement: settlement("error"), now: T0 });
    expect(s.state()).toBe("closed");
    expect(s.ctx().breaker).toBeNull();
  });
});

describe("scope actor - notices", () => {
  it("budget.exhausted once when reservations reach the limit, budget.reset at the calendar day", () => {
    const s = scope("key:acme", { budget: { limit: 10, period: "day", calendar: true } });
    s.actor.send({ type: "admit", demand: demand(6), held: false, now: T0 });
    expect(s.notices).toEqual([]);
    s.actor.send({ type: "admit", demand: demand(4), held: false, now: T0 });
    expect(s.notices).toEqual([{ type: "budget.exhausted", budget: 0, unit: "cost", used: 0, reserved: 10, limit: 10 }]);
    // Settling under the estimate brings it back under the limit, quietly.
    s.actor.send({ type: "settle", settlement: settlement("ok", { estimate: usage(4), actual: usage(1) }), now: T0 });
    expect(s.ctx().budgetExhausted[0]).toBe(false);
    s.actor.send({ type: "use", usage: usage(5), now: T0 });
    expect(s.notices.filter((n) => n.type === "budget.exhausted")).toHaveLength(2);

    const midnight = Date.UTC(2026, 0, 2);
    s.actor.send({ type: "tick", now: midnight - 1 });
    expect(s.ctx().budgets[0]!.used).toBe(6);
    s.actor.send({ type: "tick", now: midnight });
    expect(s.notices.at(-1)).toEqual({ type: "budget.reset", budget: 0, unit: "cost", periodStart: midnight, resetAt: midnight + 86_400_000 });
    // used back to 0; the 6 still reserved are in flight and stay reserved.
    expect(s.ctx().budgets[0]).toEqual({ used: 0, reserved: 6, periodStart: midnight, resetAt: midnight + 86_400_000 });
    expect(s.ctx().budgetExhausted[0]).toBe(false);
    // A second tick at the same moment does not reset again.
    s.actor.send({ type: "tick", now: midnight });
    expect(s.notices.filter((n) => n.type === "budget.reset")).toHaveLength(1);
  });

  it("pacing.changed on an upstream 429 and again as ok reports bring it back", () => {
    const s = scope("model:gpt-4o", { adaptive: { baseMs: 200, maxMs: 5_000, factor: 2, recovery: 0.5, recoverAfter: 2 } });
    s.actor.send({ type: "settle", settlement: settlement("rate_limited"), now: T0 });
    expect(s.notices).toEqual([{ type: "pacing.changed", intervalMs: 200 }]);
    expect(scopeCheck(s.ctx(), demand(), T0)).toMatchObject({ ok: true, delayMs: 200 });
    // A second 429 within the interval is the same congestion; its retry-after pauses the model.
    s.actor.send({ type: "settle", settlement: settlement("rate_limited", { retryAfterMs: 1_000 }), now: T0 });
    expect(s.notices).toHaveLength(1);
    expect(scopeCheck(s.ctx(), demand(), T0)).toMatchObject({ ok: true, delayMs: 1_000 });
    for (let i = 0; i < 2; i++) s.actor.send({ type: "settle", settlement: settlement("ok"), now: T0 + 2_000 });
    expect(s.notices.at(-1)).toEqual({ type: "pacing.changed", intervalMs: 100 });
    // An expired lease says nothing about the upstream.
    s.actor.send({ type: "settle", settlement: settlement("expired"), now: T0 + 2_000 });
    expect(s.notices).toHaveLength(2);
  });
});

describe("scope actor - policy changes keep usage", () => {
  it("half spent stays half spent", () => {
    const s = scope("key:acme", { rpm: 10, budget: { limit: 10, period: "day", calendar: true } });
    s.actor.send({ type: "use", usage: usage(5), now: T0 });
    for (let i = 0; i < 4; i++) s.actor.send({ type: "admit", demand: demand(0), held: false, now: T0 });
    const before = s.ctx().budgets[0]!;

    s.actor.send({ type: "policy", limits: resolveLimits({ rpm: 20, budget: { limit: 20, period: "day", calendar: true } }), now: T0 + 1 });
    const c = s.ctx();
    expect(c.limits.budgets[0]!.limit).toBe(20);
    expect(c.budgets[0]).toEqual(before);
    expect(c.budgets[0]!.used).toBe(5);
    // The rpm bucket keeps its level (6 of the old 10) under the new burst of 20.
    expect(c.buckets.rpm!.level).toBeCloseTo(6, 3);
    // 5 of 20 spent: 15 more fit exactly, a cent more does not.
    expect(scopeCheck(c, demand(15), T0 + 1).ok).toBe(true);
    expect(scopeCheck(c, demand(15.01), T0 + 1)).toMatchObject({ ok: false, reason: "budget_exhausted" });
  });

  it("a lowered limit takes effect at once", () => {
    const s = scope("key:acme", { budget: { limit: 10 } });
    s.actor.send({ type: "use", usage: usage(5), now: T0 });
    expect(scopeCheck(s.ctx(), demand(1), T0).ok).toBe(true);
    s.actor.send({ type: "policy", limits: resolveLimits({ budget: { limit: 5 } }), now: T0 });
    expect(s.ctx().budgets[0]!.used).toBe(5);
    expect(s.ctx().budgetExhausted[0]).toBe(true);
    expect(scopeCheck(s.ctx(), demand(0), T0)).toMatchObject({ ok: false, reason: "budget_exhausted" });
  });

  it("a breaker added by a policy starts closed; removed, the actor leaves open", () => {
    const s = scope("model:m", {});
    s.actor.send({ type: "policy", limits: resolveLimits(breakerPolicy), now: T0 });
    expect(s.ctx().breaker).toEqual({ state: "closed", window: [] });
    for (let i = 0; i < 4; i++) s.actor.send({ type: "settle", settlement: settlement("error"), now: T0 });
    expect(s.state()).toBe("open");
    s.actor.send({ type: "policy", limits: resolveLimits({}), now: T0 });
    expect(s.ctx().breaker).toBeNull();
    expect(s.state()).toBe("closed");
  });
});
