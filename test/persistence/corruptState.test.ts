/**
 * The state bucket is outside sluice's control: anyone with access can write it, and a
 * snapshot of another version may lack a field. A restore must neither fail nor keep a
 * context that would throw when its scope wakes; it leaves such values out, says so, and
 * the scope starts again from the journal.
 */
import { Kvm } from "@nats-io/kv";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Admissions } from "../../src/admission/Admissions.js";
import { ManualClock } from "../../src/clock.js";
import { contextFault } from "../../src/persistence/contextFault.js";
import { Persistence } from "../../src/persistence/Persistence.js";
import { Restorer } from "../../src/persistence/restore.js";
import { type ScopeSnapshot, snapshotKey } from "../../src/persistence/SnapshotStore.js";
import { stateNames } from "../../src/persistence/stateNames.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { admitRequestSchema, reportSchema } from "../../src/protocol/schemas.js";
import { ScopeRegistry } from "../../src/registry/ScopeRegistry.js";
import { useNatsServer } from "../helpers/natsFixture.js";

const nats = useNatsServer({ jetstream: true });
const T0 = Date.UTC(2026, 10, 24, 12);

/** Every kind of state a context can hold. */
const FULL = {
  leaseTtlMs: 10_000,
  scopes: {
    key: { default: { rpm: 30, tpm: 20_000, concurrency: 3, budget: [{ limit: 5 }, { limit: 50, unit: "requests", period: "day", calendar: true }] } },
    model: {
      default: {
        rps: 5,
        breaker: { errorRate: 0.5, windowMs: 10_000, minRequests: 3, cooldownMs: 5_000, probes: 1 },
        adaptive: { baseMs: 100, maxMs: 2_000, factor: 2, recovery: 0.5, recoverAfter: 2 },
        latency: { ttftMs: 800, tauMs: 5_000, initialConcurrency: 4 },
      },
    },
  },
};

const admitReq = (key: string, extra: Record<string, unknown> = {}) => admitRequestSchema.parse({ key, model: "m", ...extra });

/** A key's and the model's contexts as a snapshot stores them, after some use. */
function usedContexts(): { key: Record<string, unknown>; model: Record<string, unknown> } {
  const clock = new ManualClock(T0);
  const registry = new ScopeRegistry({ policy: parsePolicy(FULL), clock });
  const admissions = new Admissions({ registry, clock });
  for (let i = 0; i < 4; i++) {
    const d = admissions.admit(admitReq("a", { tokens: 100, cost: 1 })) as { lease?: string };
    if (d.lease) admissions.report(reportSchema.parse({ lease: d.lease, outcome: i % 2 ? "error" : "rate_limited", cost: 1 }));
  }
  const json = (scope: string) => JSON.parse(JSON.stringify(registry.context(scope))) as Record<string, unknown>;
  const out = { key: json("key:a"), model: json("model:m") };
  admissions.close();
  return out;
}

describe("contextFault", () => {
  it("accepts every context sluice writes, whatever was done to it (fast-check)", () => {
    type Op =
      | { t: "admit"; key: number; tokens: number; cost: number }
      | { t: "report"; n: number; outcome: "ok" | "rate_limited" | "error" | "timeout"; tokens: number }
      | { t: "latency"; ttft: number }
      | { t: "wait"; ms: number }
      | { t: "policy"; which: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ t: fc.constant("admit" as const), key: fc.integer({ min: 0, max: 2 }), tokens: fc.integer({ min: 0, max: 5_000 }), cost: fc.double({ min: 0, max: 3, noNaN: true }) }),
      fc.record({ t: fc.constant("report" as const), n: fc.nat(), outcome: fc.constantFrom("ok" as const, "rate_limited" as const, "error" as const, "timeout" as const), tokens: fc.integer({ min: 0, max: 5_000 }) }),
      fc.record({ t: fc.constant("latency" as const), ttft: fc.integer({ min: 1, max: 3_000 }) }),
      fc.record({ t: fc.constant("wait" as const), ms: fc.integer({ min: 0, max: 2 * 86_400_000 }) }),
      fc.record({ t: fc.constant("policy" as const), which: fc.integer({ min: 0, max: 1 }) }),
    );
    const lighter = { scopes: { key: { default: { rpm: 10 } }, model: { default: { rps: 1 } } } };
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const clock = new ManualClock(T0);
        const registry = new ScopeRegistry({ policy: parsePolicy(FULL), clock });
        const admissions = new Admissions({ registry, clock });
        const leases: { lease: string; key: string }[] = [];
        for (const o of ops) {
          if (o.t === "admit") {
            const d = admissions.admit(admitReq(`k${o.key}`, { tokens: o.tokens, cost: o.cost })) as { lease?: string };
            if (d.lease) leases.push({ lease: d.lease, key: `k${o.key}` });
          } else if (o.t === "report" && leases.length > 0) {
            const { lease, key } = leases.splice(o.n % leases.length, 1)[0]!;
            admissions.report(reportSchema.parse({ lease, key, model: "m", outcome: o.outcome, tokens: o.tokens }));
          } else if (o.t === "latency") {
            const now = clock.now();
            registry.peek("model:m")?.send({ type: "latency", ttft: { s: o.ttft, w: 1, at: now }, itl: undefined, now } as never);
          } else if (o.t === "wait") {
            clock.advance(o.ms);
            admissions.expireDue();
          } else if (o.t === "policy") registry.setPolicy(parsePolicy(o.which ? lighter : FULL));
        }
        for (const [scope] of registry.entries()) {
          const ctx = JSON.parse(JSON.stringify(registry.context(scope)));
          expect(contextFault(ctx, scope, ctx.limits)).toBeUndefined();
          expect(contextFault({ ...ctx, limits: undefined }, scope, undefined)).toBeUndefined();
        }
        admissions.close();
      }),
      { numRuns: 150 },
    );
  });

  it("names the first field that is not what sluice writes", () => {
    const { key, model } = usedContexts();
    const fault = (base: Record<string, unknown>, change: Record<string, unknown>, scope = "key:a") => {
      const ctx = { ...structuredClone(base), ...change };
      return contextFault(ctx, scope, ctx.limits as never);
    };
    expect(fault(key, {})).toBeUndefined();
    expect(fault(model, {}, "model:m")).toBeUndefined();
    expect(contextFault(5, "key:a", undefined)).toBe("ctx");
    expect(contextFault([], "key:a", undefined)).toBe("ctx");
    expect(fault(key, {}, "key:b")).toBe("scope");
    expect(fault(key, { buckets: "x" })).toBe("buckets");
    expect(fault(key, { buckets: { rpm: { level: 1, at: T0 } } })).toBe("buckets.tpm");
    expect(fault(key, { buckets: { ...(key.buckets as object), rpx: { level: 1, at: T0 } } })).toBe("buckets.rpx");
    expect(fault(key, { buckets: { ...(key.buckets as object), rpm: { level: "1", at: T0 } } })).toBe("buckets.rpm.level");
    expect(fault(key, { held: null })).toBe("held");
    expect(fault(key, { budgets: null })).toBe("budgets");
    expect(fault(key, { budgets: (key.budgets as unknown[]).slice(1) })).toBe("budgets");
    expect(fault(key, { budgets: [{ used: 1, reserved: 0, periodStart: T0, resetAt: "never" }, (key.budgets as unknown[])[1]] })).toBe("budgets.0.resetAt");
    expect(fault(key, { budgetExhausted: [false] })).toBe("budgetExhausted");
    expect(fault(key, { lastActiveAt: Number.NaN })).toBe("lastActiveAt");
    const { budgets: _b, ...noBudgets } = key;
    expect(contextFault({ ...noBudgets, budget: key.budgets }, "key:a", key.limits as never)).toBe("budgets"); // an older field name
    // The model: each state is there exactly when its limits ask for it.
    expect(fault(model, { breaker: null }, "model:m")).toBe("breaker");
    expect(fault(model, { breaker: { state: "ajar" } }, "model:m")).toBe("breaker.state");
    expect(fault(model, { breaker: { state: "open", openedAt: T0 } }, "model:m")).toBe("breaker.until");
    expect(fault(model, { pacing: null }, "model:m")).toBe("pacing");
    expect(fault(model, { ttft: { s: 1, w: 1 } }, "model:m")).toBe("ttft.at");
    expect(fault(model, { latencyLimit: { limit: 4, cutAt: "x" } }, "model:m")).toBe("latencyLimit.cutAt");
    expect(fault(key, { pacing: { intervalMs: 0, okStreak: 0, nextSlotAt: 0 } })).toBe("pacing.grownAt");
    expect(fault(key, { pacing: { intervalMs: 0, okStreak: 0, nextSlotAt: 0, grownAt: null } })).toBeUndefined(); // not asked for, harmless
    expect(fault(model, { overloaded: 0 }, "model:m")).toBe("overloaded");
  });
});

describe("restore: values that are not snapshots sluice writes", () => {
  it("are left out and counted, and the scope wakes fresh; the rest are restored", () => {
    const { key } = usedContexts();
    const clock = new ManualClock(T0);
    const registry = new ScopeRegistry({ policy: parsePolicy(FULL), clock });
    const restorer = new Restorer(registry, T0);
    const snap = (scope: string, ctx: unknown): ScopeSnapshot => ({ seq: 3, scope, ctx: ctx as never });
    const limits = { ...(key.limits as object), buckets: [{ kind: "rpm", limit: -1, burst: 1, ratePerMs: 1, tokens: false }] };
    expect(
      restorer.load([
        snap("key:a", key),
        snap("key:b", { ...key, scope: "key:b", budgets: null }),
        snap("key:c", { ...key, scope: "key:c", limits }),
        snap("key:d", "x"),
        // Stored without limits (an older format): it wakes with the policy's, and is checked against them.
        snap("key:e", { ...key, scope: "key:e", limits: undefined }),
        snap("key:f", { ...key, scope: "key:f", limits: undefined, buckets: {} }),
        snap("key:g", 0),
      ]),
    ).toBe(7);
    expect(restorer.unreadableCount).toBe(5);
    expect(restorer.unreadableExamples).toEqual([
      "key:b: ctx.budgets",
      "key:c: ctx.limits.buckets.0.limit: expected a positive number",
      "key:d: ctx.ctx",
      "key:f: ctx.buckets.rpm",
      "key:g: ctx.ctx",
    ]);
    expect(registry.dormantCount).toBe(2);
    // Each wakes: the good one with its usage, the others fresh.
    const admissions = new Admissions({ registry, clock });
    for (const k of ["a", "b", "c", "d", "e", "f", "g"]) {
      const d = admissions.admit(admitReq(k)) as { decision: string; lease: string };
      expect(d, k).toMatchObject({ decision: "admit" });
      // The model allows 4 in flight to start with, and 5 a second.
      admissions.report(reportSchema.parse({ lease: d.lease, outcome: "ok" }));
      clock.advance(200);
    }
    expect(registry.context("key:e")!.budgets[1]!.used).toBe((key.budgets as { used: number }[])[1]!.used + 1);
    expect(registry.context("key:a")!.budgets[1]!.used).toBe((key.budgets as { used: number }[])[1]!.used + 1);
    expect(registry.context("key:b")!.budgets[1]!.used).toBe(1);
    admissions.close();
  });

  it("a restart against a bucket holding garbage restores the rest, counts the garbage, and serves every scope", { timeout: 30_000 }, async () => {
    const clock = new ManualClock(T0);
    const prefix = "garbage";
    const first = await Persistence.open(nats.nc, prefix);
    const registry = new ScopeRegistry({ policy: parsePolicy(FULL), clock });
    const admissions = new Admissions({ registry, clock, changed: first.markDirty });
    first.start(registry, admissions, clock);
    for (const k of ["a", "b", "c"]) admissions.admit(admitReq(k, { cost: 1 }));
    await first.stop();
    admissions.close();

    const kv = await new Kvm(nats.nc).open(stateNames(prefix).stateBucket);
    await kv.put(snapshotKey("key:b"), "{not json");
    await kv.put(snapshotKey("key:c"), JSON.stringify({ seq: 2, scope: "key:c", ctx: { scope: "key:c" } }));
    await kv.put(snapshotKey("key:x"), JSON.stringify([1, 2]));
    // A snapshot naming limits the bucket does not hold.
    const a = (await kv.get(snapshotKey("key:a")))!.json<{ ctx: unknown }>();
    await kv.put(snapshotKey("key:y"), JSON.stringify({ seq: 2, scope: "key:y", lim: "gone", ctx: { ...(a.ctx as object), scope: "key:y" } }));
    await kv.put("m.round", "]]");

    const again = await Persistence.open(nats.nc, prefix);
    const registry2 = new ScopeRegistry({ policy: parsePolicy(FULL), clock });
    const admissions2 = new Admissions({ registry: registry2, clock });
    const stats = await again.restore(registry2, admissions2, clock.now());
    expect([stats.snapshots, stats.unreadable]).toEqual([6, 4]); // key:a–c and model:m written, key:x and key:y added
    expect(registry2.dormantContext("key:a")!.budgets[0]!.used).toBe(0); // reserved, not used: reservations do not survive
    expect(registry2.dormantContext("key:b")).toBeUndefined();
    clock.advance(1_000); // the model's rps bucket holds the first run's three
    expect(registry2.dormantContext("key:y")).toBeUndefined();
    // Reported one by one: the model lets 4 in flight at first.
    for (const k of ["a", "b", "c", "x", "y"]) {
      const d = admissions2.admit(admitReq(k)) as { decision: string; lease: string };
      expect(d, k).toMatchObject({ decision: "admit" });
      admissions2.report(reportSchema.parse({ lease: d.lease, outcome: "ok" }));
    }
    admissions2.close();
    await again.stop();
  });
});

describe("restore: more scopes holding usage than SLUICE_MAX_SCOPES", () => {
  it("keeps every one (counts are never dropped for room), says so, and refuses new scopes until sleeping ones are reclaimed", { timeout: 30_000 }, async () => {
    const clock = new ManualClock(T0);
    const prefix = "overcap";
    const policy = parsePolicy({ scopes: { key: { default: { budget: { limit: 10, unit: "requests", period: "day", calendar: true } } } } });
    const first = await Persistence.open(nats.nc, prefix);
    const registry = new ScopeRegistry({ policy, clock });
    const admissions = new Admissions({ registry, clock, changed: first.markDirty });
    first.start(registry, admissions, clock);
    for (const k of ["a", "b", "c", "d"]) {
      const d = admissions.admit(admitReq(k)) as { lease: string };
      admissions.report(reportSchema.parse({ lease: d.lease, outcome: "ok" }));
    }
    await first.stop();
    admissions.close();

    // Restarted with room for three.
    const lines: string[] = [];
    const log = (level: string) => (_obj: unknown, msg?: string) => lines.push(`${level} ${msg}`);
    const logger = { warn: log("warn"), info: log("info"), debug: log("debug"), error: log("error") } as never;
    const again = await Persistence.open(nats.nc, prefix, {}, logger);
    const small = new ScopeRegistry({ policy, clock, maxScopes: 3 });
    const admissions2 = new Admissions({ registry: small, clock });
    await again.restore(small, admissions2, clock.now());
    expect(small.dormantCount).toBe(4);
    expect(lines.filter((l) => l.startsWith("warn"))).toEqual([expect.stringContaining("the restored scopes fill SLUICE_MAX_SCOPES")]);
    expect(() => admissions2.admit(admitReq("e"))).toThrow("too many scopes (live and passivated)");
    // A restored scope is served, with its usage; its model, which has no limits (and no snapshot), does not need room.
    expect(admissions2.admit(admitReq("a"))).toMatchObject({ decision: "admit" });
    expect(small.context("key:a")!.budgets[0]).toMatchObject({ used: 1, reserved: 1 });
    // The next day their usage is over: reclaimed, and there is room again.
    clock.advance(86_400_000);
    small.reclaimDormant(10, clock.now());
    expect(small.dormantCount).toBe(0);
    expect(admissions2.admit(admitReq("e"))).toMatchObject({ decision: "admit" });
    admissions2.close();
    await again.stop();
  });
});
