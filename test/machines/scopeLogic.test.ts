import fc from "fast-check";
import { createActor } from "xstate";
import { describe, expect, it } from "vitest";
import { resolveLimits } from "../../machines/policy.js";
import { type ScopeNotice, scopeInit, scopeLatency } from "../../machines/scope.js";
import { scopeLogic, scopeLogicImmutable } from "../../machines/scopeLogic.js";
import { type ScopeEvent, scopeMachine } from "../../machines/scopeMachine.js";
import { ManualClock } from "../../src/clock.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { ScopeRegistry, scopeStateOf } from "../../src/registry/ScopeRegistry.js";

const T0 = Date.UTC(2026, 10, 23, 23, 0);
const limits = resolveLimits({
  rpm: 5,
  tpm: 2_000,
  concurrency: 3,
  budget: [
    { limit: 4, unit: "cost", period: "day", calendar: true },
    { limit: 6, unit: "requests", periodMs: 600_000 },
  ],
  adaptive: { baseMs: 100, maxMs: 1_000, factor: 2, recovery: 0.5, recoverAfter: 2 },
});
const withBreaker = resolveLimits({
  rpm: 50,
  concurrency: 5,
  breaker: { errorRate: 0.5, windowMs: 10_000, minRequests: 2, cooldownMs: 5_000, probes: 2 },
});
const usage = (tokens: number, cost: number) => ({ tokens, cost, requests: 1 });

const event = (now: number): fc.Arbitrary<ScopeEvent> =>
  fc.oneof(
    fc.record({ tokens: fc.integer({ min: 0, max: 500 }), cost: fc.double({ min: 0, max: 2, noNaN: true }) }).map((d) => ({ type: "admit" as const, demand: d, held: true, now })),
    fc
      .record({ outcome: fc.constantFrom("ok" as const, "rate_limited" as const, "error" as const, "timeout" as const, "expired" as const), t: fc.integer({ min: 0, max: 900 }), probe: fc.boolean() })
      .map(({ outcome, t, probe }) => ({
        type: "settle" as const,
        settlement: { estimate: usage(100, 0.5), actual: usage(t, t / 300), outcome, held: true, probe },
        now,
      })),
    fc.integer({ min: 0, max: 400 }).map((t) => ({ type: "use" as const, usage: usage(t, t / 400), now })),
    fc.constant({ type: "tick" as const, now }),
    fc.constantFrom("usage" as const, "all" as const).map((what) => ({ type: "reset" as const, what, now })),
  );

describe("scope transition logic", () => {
  it("gives the same context, notices and state value as the scope machine, for any events, with a breaker or without, in place or not", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 120_000 }), fc.boolean()), { maxLength: 60 }), fc.infiniteStream(fc.nat()), fc.boolean(), fc.boolean(), (steps, seeds, breaker, inPlace) => {
        const input = { scope: "key:k", limits: breaker ? withBreaker : limits, now: T0 };
        const machine = createActor(scopeMachine, { input }).start();
        const logic = createActor(inPlace ? scopeLogic : scopeLogicImmutable, { input }).start();
        const notices: [ScopeNotice[], ScopeNotice[]] = [[], []];
        machine.on("*", (n) => notices[0].push(n));
        logic.on("*", (n) => notices[1].push(n));
        let now = T0;
        const it = seeds[Symbol.iterator]();
        for (const [dt, asBatch] of steps) {
          now += dt;
          const e = fc.sample(event(now), { numRuns: 1, seed: it.next().value as number })[0]!;
          const sent = asBatch ? { type: "batch" as const, events: [e, { type: "tick" as const, now }] } : e;
          machine.send(sent);
          logic.send(sent);
          expect(logic.getSnapshot().context).toEqual(machine.getSnapshot().context);
          expect((logic.getSnapshot() as { value?: unknown }).value).toBe(machine.getSnapshot().value);
        }
        expect(notices[1]).toEqual(notices[0]);
      }),
      { numRuns: 200 },
    );
  });

  it("keeps one context object for its lifetime in place, and a new one per change otherwise", () => {
    const admit: ScopeEvent = { type: "admit", demand: { tokens: 10, cost: 0.5 }, held: true, now: T0 + 1 };
    const settle: ScopeEvent = { type: "settle", settlement: { estimate: usage(10, 0.5), actual: usage(30, 0.7), outcome: "ok", held: true, probe: false }, now: T0 + 2 };
    const own = createActor(scopeLogic, { input: { scope: "key:k", limits, now: T0 } }).start();
    const ctx = own.getSnapshot().context;
    own.send(admit);
    expect(own.getSnapshot().context).toBe(ctx);
    expect(ctx.held).toBe(1);
    own.send(settle);
    expect(own.getSnapshot().context).toBe(ctx);
    expect(ctx.held).toBe(0);
    expect(ctx.budgets[0]!.used).toBeCloseTo(0.7);

    const fresh = createActor(scopeLogicImmutable, { input: { scope: "key:k", limits, now: T0 } }).start();
    const first = structuredClone(fresh.getSnapshot().context);
    const kept = fresh.getSnapshot().context;
    fresh.send(admit);
    expect(fresh.getSnapshot().context).not.toBe(kept);
    expect(kept).toEqual(first);
  });

  it("ignores XState's own events", () => {
    const a = createActor(scopeLogic, { input: { scope: "key:k", limits, now: T0 } }).start();
    const before = a.getSnapshot().context;
    a.stop();
    expect(a.getSnapshot().context).toBe(before);
  });
});

describe("registry - which logic a scope runs", () => {
  it("runs the transition logic for every scope while nobody inspects, breakers included", () => {
    const clock = new ManualClock(T0);
    const breaker = { errorRate: 0.5, windowMs: 1000, minRequests: 1, cooldownMs: 1000, probes: 1 };
    const registry = new ScopeRegistry({ policy: parsePolicy({ scopes: { model: { default: { breaker } } } }), clock });
    const actor = registry.get("model:m");
    expect((actor as { logic: unknown }).logic).toBe(scopeLogic);
    actor.send({ type: "settle", settlement: { estimate: usage(0, 0), actual: usage(0, 0), outcome: "error", held: false, probe: false }, now: T0 });
    expect(scopeStateOf(actor)).toBe("open");
  });

  it("with inspection on, runs the machine where the policy gives a breaker (immutable logic elsewhere), and moves a live scope over when one is added, usage kept", () => {
    const clock = new ManualClock(T0);
    const registry = new ScopeRegistry({ policy: parsePolicy({ scopes: { model: { default: { budget: { limit: 10 } } } } }), clock, inspect: () => {} });
    const actor = registry.get("model:m");
    // Inspectors may keep snapshots (Stately's queues them until its socket is open): a new context per change.
    expect((actor as { logic: unknown }).logic).toBe(scopeLogicImmutable);
    actor.send({ type: "use", usage: usage(0, 2.5), now: T0 });
    registry.setPolicy(parsePolicy({ scopes: { model: { default: { budget: { limit: 10 }, breaker: { errorRate: 0.5, windowMs: 1000, minRequests: 1, cooldownMs: 1000, probes: 1 } } } } }));
    const moved = registry.peek("model:m")!;
    expect(moved).not.toBe(actor);
    expect(scopeStateOf(moved)).toBe("closed");
    expect((moved as { logic: unknown }).logic).toBe(scopeMachine);
    expect(moved.getSnapshot().context.budgets[0]!.used).toBe(2.5);
  });
});

describe("scope - latency averages", () => {
  it("are taken where the limits have a latency policy, and ignored where they have none (as after a policy change removed it)", () => {
    const avg = { s: 900, w: 1, at: T0 };
    const shedding = resolveLimits({ latency: { ttftMs: 500, tauMs: 1_000 } });
    const step = scopeLatency(scopeInit("model:m", shedding, T0), avg, undefined, T0);
    expect(step.ctx.ttft).toEqual(avg);
    expect(step.ctx.overloaded).toBe(true);
    expect(step.notices.map((n) => n.type)).toEqual(["overloaded.on"]);
    const none = scopeLatency(scopeInit("model:m", limits, T0), avg, avg, T0);
    expect([none.ctx.ttft, none.ctx.itl, none.ctx.overloaded, none.notices]).toEqual([null, null, false, []]);
  });
});
