import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { resolveLimits } from "../../machines/policy.js";
import { scopeAdmit, scopeInit, scopeSettle } from "../../machines/scope.js";
import { ManualClock } from "../../src/clock.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { DormantStore } from "../../src/registry/DormantStore.js";
import { ScopeRegistry } from "../../src/registry/ScopeRegistry.js";

const T0 = Date.UTC(2026, 10, 23, 9);

/** How the store keeps a context packed by shape (its internals, looked at by these tests). */
interface Shaped {
  shape: { pieces: string[] };
  values: number[];
}

describe("dormant contexts", () => {
  it("packs a context for a long sleep and gives back an equal one, sharing the limits object", () => {
    const limits = resolveLimits({
      rpm: 7,
      tpm: 1_000,
      budget: [{ limit: 3.3, period: "day", calendar: true }, { limit: 9, unit: "requests" }],
      breaker: { errorRate: 0.5, windowMs: 60_000, minRequests: 2, cooldownMs: 1_000, probes: 1 },
      adaptive: { baseMs: 100, maxMs: 1_000, factor: 2, recovery: 0.5, recoverAfter: 2 },
      latency: { ttftMs: 900, tauMs: 5_000 },
    });
    let ctx = scopeAdmit(scopeInit("key:k", limits, T0), { tokens: 123, cost: 0.1 + 0.2 }, true, T0 + 7).ctx;
    ctx = scopeSettle(
      ctx,
      { estimate: { tokens: 123, cost: 0.3, requests: 1 }, actual: { tokens: 77, cost: 1 / 3, requests: 1 }, outcome: "rate_limited", held: true, probe: false, latency: { ttftMs: 1234.5 } },
      T0 + 19,
    ).ctx;
    const store = new DormantStore();
    store.set("key:k", ctx, true);
    const back = store.get("key:k")!;
    expect(back).toEqual(ctx);
    expect(back.limits).toBe(limits);
    // Floats survive exactly.
    expect(back.budgets[0]!.used).toBe(ctx.budgets[0]!.used);
  });

  it("leaves out of the packed JSON the scope and the fields that hold their usual value, and gives them back", () => {
    const limits = resolveLimits({ rpm: 60, budget: { limit: 1_000, unit: "requests", period: "day", calendar: true } });
    const ctx = scopeAdmit(scopeInit("key:mk-1", limits, T0), { tokens: 0, cost: 0 }, false, T0 + 5).ctx;
    expect(ctx).toMatchObject({ held: 0, breaker: null, pacing: null, ttft: null, itl: null, overloaded: false, latencyLimit: null, unreported: 0 });
    const store = new DormantStore();
    store.set("key:mk-1", ctx, true);
    expect(store.get("key:mk-1")).toEqual(ctx);
    // Kept under another name than its own (never done by the registry), it still keeps its own.
    store.set("key:other", ctx, true);
    expect(store.get("key:other")!.scope).toBe("key:mk-1");
    const packed = (store as unknown as { m: Map<string, Shaped> }).m.get("key:mk-1")!;
    expect(Object.keys(JSON.parse(packed.shape.pieces.join("0"))).sort()).toEqual(["buckets", "budgetExhausted", "budgets", "lastActiveAt"]);
  });

  it("keeps of each context only its numbers; contexts of one structure and limits share the rest", () => {
    const limits = resolveLimits({ rpm: 60, budget: { limit: 1_000, unit: "requests", period: "day", calendar: true } });
    const store = new DormantStore();
    const ctxs = [1, 2, 3].map((i) => scopeAdmit(scopeInit(`key:k${i}`, limits, T0), { tokens: 0, cost: 0 }, false, T0 + i / 3).ctx);
    ctxs.forEach((c) => store.set(c.scope, c, true));
    const m = (store as unknown as { m: Map<string, Shaped> }).m;
    const [a, b, c] = ctxs.map((x) => m.get(x.scope)!);
    expect(a!.shape).toBe(b!.shape);
    expect(b!.shape).toBe(c!.shape);
    // level, at; used, reserved, periodStart, resetAt; lastActiveAt.
    const b0 = ctxs[0]!.budgets[0]!;
    expect(a!.values).toEqual([59, T0 + 1 / 3, b0.used, b0.reserved, b0.periodStart, b0.resetAt, T0 + 1 / 3]);
    ctxs.forEach((x) => expect(store.get(x.scope)).toEqual(x));
    // Another limits object (a policy change, an override): a shape of its own.
    const other = resolveLimits({ rpm: 60, budget: { limit: 1_000, unit: "requests", period: "day", calendar: true } });
    store.set("key:k4", { ...ctxs[0]!, scope: "key:k4", limits: other }, true);
    expect(m.get("key:k4")!.shape).not.toBe(a!.shape);
    expect(store.get("key:k4")!.limits).toBe(other);
  });

  it("packs as plain JSON a context whose strings could be taken for the number mark, and gives it back", () => {
    const limits = resolveLimits({ rpm: 60 });
    const ctx = scopeAdmit(scopeInit("key:x", limits, T0), { tokens: 0, cost: 0 }, false, T0 + 1).ctx;
    const store = new DormantStore();
    for (const odd of ["\u0000#", 'end"\u0000#', 'a"\u0000#"b']) {
      const named = { ...ctx, scope: odd };
      store.set("key:x", named, true);
      expect(store.get("key:x")).toEqual(named);
    }
  });

  it("gives back every number exactly (property)", () => {
    const limits = resolveLimits({ rpm: 60, tpm: 1_000, budget: { limit: 3.3, period: "day", calendar: true } });
    const base = scopeAdmit(scopeInit("key:p", limits, T0), { tokens: 10, cost: 0.5 }, false, T0 + 1).ctx;
    const num = fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Object.is(x, -0));
    const store = new DormantStore();
    fc.assert(
      fc.property(num, num, num, num, fc.integer({ min: 0, max: 5 }), (level, at, used, last, held) => {
        const ctx = structuredClone({ ...base, limits: undefined }) as unknown as typeof base;
        ctx.limits = limits;
        ctx.buckets.rpm = { level, at };
        ctx.budgets[0]!.used = used;
        ctx.lastActiveAt = last;
        ctx.held = held;
        store.set("key:p", ctx, true);
        expect(store.get("key:p")).toEqual(ctx);
      }),
    );
  });

  it("scopes of a kind without an override share one limits object; an override gets its own", () => {
    const registry = new ScopeRegistry({ policy: parsePolicy({ scopes: { key: { default: { rpm: 5 }, overrides: { vip: { rpm: 50 } } } } }), clock: new ManualClock(T0) });
    expect(registry.limitsFor("key:a")).toBe(registry.limitsFor("key:b"));
    expect(registry.limitsFor("key:vip")).not.toBe(registry.limitsFor("key:a"));
    expect(registry.limitsFor("key:vip").buckets[0]!.limit).toBe(50);
    registry.setPolicy(parsePolicy({ scopes: { key: { default: { rpm: 6 } } } }));
    expect(registry.limitsFor("key:a").buckets[0]!.limit).toBe(6);
  });
});
