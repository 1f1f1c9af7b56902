import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ScopeContext } from "../../machines/scope.js";
import { scopeAdvance } from "../../machines/scope.js";
import { hasBit } from "../../src/admission/LeaseTable.js";
import type { Decision } from "../../src/protocol/decision.js";
import { type Sluice, mulberry32, sluice } from "./helpers.js";

const SLACK = 1e-6;
const DAY = 86_400_000;

// ---------------------------------------------------------------------------
// Rate limits against a reference token bucket
// ---------------------------------------------------------------------------

/** The simplest token bucket there is: a level and the time it was true. */
class RefBucket {
  private level: number;
  private at: number;
  constructor(
    readonly burst: number,
    readonly ratePerMs: number,
    start: number,
  ) {
    this.level = burst;
    this.at = start;
  }
  levelAt(t: number): number {
    return Math.min(this.burst, this.level + (t - this.at) * this.ratePerMs);
  }
  take(amount: number, t: number): void {
    this.level = this.levelAt(t) - amount;
    this.at = t;
  }
}

/** Most units admitted at times within any window [times[i], times[j]], minus what the bound allows. */
function worstExcess(events: { t: number; units: number }[], burst: number, ratePerMs: number): number {
  let worst = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < events.length; i++) {
    let sum = 0;
    for (let j = i; j < events.length; j++) {
      sum += events[j]!.units;
      worst = Math.max(worst, sum - (burst + ratePerMs * (events[j]!.t - events[i]!.t)));
    }
  }
  return worst;
}

describe("admissions properties - rate limits", () => {
  it("admits at most burst + rate·T over any interval, and never refuses what a reference bucket says fits", () => {
    const arb = fc
      .record({
        rpm: fc.oneof(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 600 })),
        burst: fc.integer({ min: 1, max: 20 }),
        tpm: fc.oneof(fc.integer({ min: 100, max: 20_000 }), fc.integer({ min: 100, max: 200_000 })),
        tpmBurst: fc.integer({ min: 10, max: 5_000 }),
        windowMs: fc.oneof(fc.integer({ min: 1, max: 20_000 }), fc.integer({ min: 1, max: 120_000 })),
      })
      .chain((p) =>
        fc.record({
          p: fc.constant(p),
          arrivals: fc.array(
            fc.record({
              t: fc.integer({ min: 0, max: p.windowMs }),
              tokens: fc.oneof(
                fc.integer({ min: 0, max: p.tpmBurst }),
                fc.integer({ min: Math.floor(p.tpmBurst / 2), max: p.tpmBurst }),
                fc.integer({ min: 0, max: Math.ceil(p.tpmBurst * 1.2) }),
                fc.constant(0),
              ),
            }),
            { minLength: 1, maxLength: 80, size: "max" },
          ),
        }),
      );

    fc.assert(
      fc.property(arb, ({ p, arrivals }) => {
        arrivals.sort((a, b) => a.t - b.t);
        const s = sluice(
          { scopes: { key: { default: { rpm: p.rpm, burst: p.burst, tpm: p.tpm, tpmBurst: p.tpmBurst } } } },
          { random: mulberry32(p.rpm) },
        );
        const start = s.clock.now();
        const reqRef = new RefBucket(p.burst, p.rpm / 60_000, start);
        const tokRef = new RefBucket(p.tpmBurst, p.tpm / 60_000, start);
        const admittedReqs: { t: number; units: number }[] = [];
        const admittedToks: { t: number; units: number }[] = [];

        for (const a of arrivals) {
          const t = start + a.t;
          s.clock.advance(t - s.clock.now());
          const d = s.admit({ key: "k", model: "m", tokens: a.tokens });
          const reqLevel = reqRef.levelAt(t);
          const tokLevel = tokRef.levelAt(t);
          if (d.decision === "admit") {
            // Admitted: the reference agrees there was room.
            expect(reqLevel).toBeGreaterThanOrEqual(1 - SLACK);
            expect(tokLevel).toBeGreaterThanOrEqual(a.tokens - SLACK);
            reqRef.take(1, t);
            tokRef.take(a.tokens, t);
            admittedReqs.push({ t, units: 1 });
            admittedToks.push({ t, units: a.tokens });
          } else if (d.reason === "too_large") {
            expect(a.tokens).toBeGreaterThan(p.tpmBurst);
            expect(d.retryAfterMs).toBeUndefined();
          } else {
            // Never fall short: a rate_limited refusal means one of the buckets really lacked room...
            expect(d.reason).toBe("rate_limited");
            expect(reqLevel < 1 + SLACK || tokLevel < a.tokens + SLACK).toBe(true);
            // ...and the retry time, before jitter (at most ×1.6), is when both have it.
            const need = Math.max(
              reqLevel >= 1 ? 0 : (1 - reqLevel) / reqRef.ratePerMs,
              tokLevel >= a.tokens ? 0 : (a.tokens - tokLevel) / tokRef.ratePerMs,
            );
            expect(d.retryAfterMs!).toBeGreaterThanOrEqual(Math.ceil(need - SLACK) - 1);
            expect(d.retryAfterMs!).toBeLessThanOrEqual(Math.ceil((Math.ceil(need) + 1) * 1.6));
          }
          // A request within burst is never too_large.
          if (a.tokens <= p.tpmBurst) expect(d.decision === "reject" && d.reason === "too_large").toBe(false);
        }

        expect(worstExcess(admittedReqs, p.burst, p.rpm / 60_000)).toBeLessThanOrEqual(SLACK);
        expect(worstExcess(admittedToks, p.tpmBurst, p.tpm / 60_000)).toBeLessThanOrEqual(SLACK);
        // And over the whole window, as the protocol states it.
        expect(admittedReqs.length).toBeLessThanOrEqual(p.burst + (p.rpm / 60_000) * p.windowMs + SLACK);
      }),
    );
  });
});

// ---------------------------------------------------------------------------
// Concurrency: no lease leaks
// ---------------------------------------------------------------------------

const KEYS = ["a", "b", "c"] as const;
const MODELS = ["x", "y"] as const;
const TTL = 10_000;

type Step =
  | { op: "admit"; key: string; model: string }
  | { op: "report"; pick: number; outcome: "ok" | "error" | "cancelled" }
  | { op: "unknown"; key: string; model: string; n: number }
  | { op: "advance"; ms: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant("admit" as const), key: fc.constantFrom(...KEYS), model: fc.constantFrom(...MODELS) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("report" as const), pick: fc.nat(), outcome: fc.constantFrom("ok" as const, "error" as const, "cancelled" as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("unknown" as const), key: fc.constantFrom(...KEYS), model: fc.constantFrom(...MODELS), n: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.oneof(fc.integer({ min: 0, max: 3_000 }), fc.integer({ min: TTL - 50, max: TTL + 50 })) }) },
);

/** Held slots per scope according to the lease table. */
function heldByLeases(s: Sluice): Map<string, number> {
  const m = new Map<string, number>();
  for (const rec of s.admissions.leases.values()) {
    rec.scopes.forEach((scope, i) => {
      if (hasBit(rec.heldMask, i)) m.set(scope, (m.get(scope) ?? 0) + 1);
    });
  }
  return m;
}

describe("admissions properties - concurrency", () => {
  it("held never passes the limit, always matches the live leases, and is 0 once every lease is past its TTL", () => {
    const arb = fc.record({
      keyLimit: fc.integer({ min: 1, max: 3 }),
      cLimit: fc.integer({ min: 0, max: 2 }),
      modelLimit: fc.integer({ min: 1, max: 4 }),
      steps: fc.array(stepArb, { minLength: 1, maxLength: 120, size: "max" }),
    });
    fc.assert(
      fc.property(arb, ({ keyLimit, cLimit, modelLimit, steps }) => {
        const limits: Record<string, number> = {};
        for (const k of KEYS) limits[`key:${k}`] = k === "c" ? cLimit : keyLimit;
        for (const m of MODELS) limits[`model:${m}`] = modelLimit;
        const s = sluice({
          leaseTtlMs: TTL,
          scopes: {
            key: { default: { concurrency: keyLimit }, overrides: { c: { concurrency: cLimit } } },
            model: { default: { concurrency: modelLimit } },
          },
        });
        const leases: { lease: string; key: string; model: string }[] = [];

        const check = () => {
          const byLeases = heldByLeases(s);
          for (const [scope, actor] of s.registry.entries()) {
            const held = actor.getSnapshot().context.held;
            expect(held).toBeLessThanOrEqual(limits[scope]!);
            expect(held).toBe(byLeases.get(scope) ?? 0);
          }
        };

        for (const st of steps) {
          switch (st.op) {
            case "admit": {
              const d = s.admit({ key: st.key, model: st.model });
              if (d.decision === "admit") leases.push({ lease: d.lease, key: st.key, model: st.model });
              else expect(d.reason).toBe("concurrency");
              break;
            }
            case "report":
              // Any lease ever handed out: live, already reported (a duplicate), expired (late) or long forgotten (orphan).
              if (leases.length > 0) s.report({ ...leases[st.pick % leases.length]!, outcome: st.outcome });
              break;
            case "unknown":
              expect(s.report({ lease: `L-nobody-${st.n}`, key: st.key, model: st.model, outcome: "ok" }).status).toMatch(/orphan|duplicate/);
              break;
            case "advance":
              s.clock.advance(st.ms);
              break;
          }
          check();
        }

        s.clock.advance(TTL);
        check();
        expect(s.admissions.leases.size).toBe(0);
        for (const [, actor] of s.registry.entries()) expect(actor.getSnapshot().context.held).toBe(0);
      }),
    );
  });
});

// ---------------------------------------------------------------------------
// All or nothing
// ---------------------------------------------------------------------------

describe("admissions properties - all or nothing", () => {
  it("a rejected admission leaves every live scope's context exactly as it was", () => {
    const req = fc.record({
      key: fc.constantFrom("alice", "bob", "carol"),
      model: fc.constantFrom("x", "y"),
      job: fc.option(fc.constantFrom("j1", "j2"), { nil: undefined }),
      tokens: fc.integer({ min: 0, max: 1_500 }),
      cost: fc.integer({ min: 0, max: 12 }).map((n) => n / 4),
    });
    const step = fc.oneof(
      { weight: 6, arbitrary: fc.record({ op: fc.constant("admit" as const), req }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("report" as const), pick: fc.nat(), tokens: fc.integer({ min: 0, max: 2_000 }), cost: fc.integer({ min: 0, max: 12 }).map((n) => n / 4) }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 20_000 }) }) },
    );
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 80, size: "max" }), (steps) => {
        const s = sluice(
          {
            leaseTtlMs: 30_000,
            scopes: {
              key: {
                default: { rpm: 6, burst: 3, tpm: 30_000, tpmBurst: 2_000, concurrency: 2, budget: { limit: 6, periodMs: 60_000 } },
                overrides: { alice: { parents: { team: "search" } }, bob: { parents: { team: "search" } } },
              },
              model: { default: { rpm: 8, tpm: 6_000, concurrency: 3, budget: { limit: 10 } } },
              team: { default: { concurrency: 3, budget: { limit: 8, periodMs: 120_000 } } },
              job: { default: { budget: { limit: 3, unit: "requests" } } },
            },
          },
          { random: mulberry32(7) },
        );
        const leases: { lease: string; key: string; model: string }[] = [];
        let rejections = 0;
        for (const st of steps) {
          if (st.op === "admit") {
            const before = new Map<string, ScopeContext>();
            for (const [scope, actor] of s.registry.entries()) before.set(scope, structuredClone(actor.getSnapshot().context));
            const leaseCount = s.admissions.leases.size;
            const { job, ...rest } = st.req;
            const d: Decision = s.admit({ ...rest, scopes: job ? { job } : {} });
            if (d.decision === "admit") {
              leases.push({ lease: d.lease, key: st.req.key, model: st.req.model });
              continue;
            }
            rejections++;
            expect(s.admissions.leases.size).toBe(leaseCount);
            for (const [scope, ctx] of before) expect(s.ctx(scope), `${scope} after ${d.reason} by ${d.scope}`).toEqual(ctx);
          } else if (st.op === "report") {
            if (leases.length > 0) s.report({ ...leases[st.pick % leases.length]!, outcome: "ok", tokens: st.tokens, cost: st.cost });
          } else {
            s.clock.advance(st.ms);
          }
        }
        expect(rejections).toBeGreaterThanOrEqual(0);
      }),
    );
  });
});

// ---------------------------------------------------------------------------
// Budgets against a reference ledger
// ---------------------------------------------------------------------------

const LIMIT = 10;
const LEASE_TTL = 3_600_000;

interface RefLease {
  id: string;
  key: string;
  est: number;
  expiresAt: number;
  state: "live" | "reported" | "expired";
  /** Forget the tombstone at this time (settled + TTL). */
  tombUntil: number;
}

/** Settled amounts per key and UTC day, as the protocol says they should be. */
class Ledger {
  readonly used = new Map<string, number>();
  readonly over = new Map<string, number>();
  readonly leases: RefLease[] = [];
  /** Tombstones of reports for unknown leases. */
  readonly orphans = new Map<string, number>();

  private add(map: Map<string, number>, key: string, t: number, amount: number): void {
    const k = `${key}@${Math.floor(t / DAY)}`;
    map.set(k, (map.get(k) ?? 0) + amount);
  }
  settle(key: string, t: number, amount: number, estimate: number): void {
    this.add(this.used, key, t, amount);
    if (amount > estimate) this.add(this.over, key, t, amount - estimate);
  }
  usedAt(key: string, t: number): number {
    return this.used.get(`${key}@${Math.floor(t / DAY)}`) ?? 0;
  }
  overAt(key: string, t: number): number {
    return this.over.get(`${key}@${Math.floor(t / DAY)}`) ?? 0;
  }
  reservedOf(key: string): number {
    return this.leases.filter((l) => l.key === key && l.state === "live").reduce((a, l) => a + l.est, 0);
  }
  /** Leases that ran out by `t` settle at their estimate, at their expiry time. */
  expireUpTo(t: number): void {
    for (const l of this.leases) {
      if (l.state === "live" && l.expiresAt <= t) {
        l.state = "expired";
        l.tombUntil = l.expiresAt + LEASE_TTL;
        this.settle(l.key, l.expiresAt, l.est, l.est);
      }
    }
  }
}

type BudgetStep =
  | { op: "admit"; key: string; est: number }
  | { op: "report"; pick: number; actual: number | undefined; named: boolean }
  | { op: "orphan"; key: string; n: number; actual: number }
  | { op: "advance"; ms: number };

const quarter = (max: number) => fc.integer({ min: 0, max: max * 4 }).map((n) => n / 4);
const budgetStepArb: fc.Arbitrary<BudgetStep> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant("admit" as const), key: fc.constantFrom("a", "b"), est: quarter(5) }) },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant("report" as const),
      pick: fc.nat(),
      actual: fc.option(quarter(8), { nil: undefined }),
      named: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("orphan" as const), key: fc.constantFrom("a", "b"), n: fc.nat(2), actual: quarter(3) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("advance" as const),
      ms: fc.oneof(
        fc.integer({ min: 0, max: 600_000 }),
        fc.integer({ min: LEASE_TTL - 60_000, max: LEASE_TTL + 60_000 }),
        fc.integer({ min: 0, max: 2 * LEASE_TTL }),
        fc.constant(LEASE_TTL),
      ),
    }),
  },
);

describe("admissions properties - budgets", () => {
  it("used is the sum of settled amounts since the last calendar reset, and passes the limit only by reports above their estimates", () => {
    // Often start in the last hours of a day, so that leases straddle midnight.
    const offsetArb = fc.oneof(fc.integer({ min: 0, max: DAY - 1 }), fc.integer({ min: DAY - 3 * 3_600_000, max: DAY - 1 }));
    fc.assert(
      fc.property(offsetArb, fc.array(budgetStepArb, { minLength: 1, maxLength: 150, size: "max" }), (offset, steps) => {
        const s = sluice(
          { leaseTtlMs: LEASE_TTL, scopes: { key: { default: { budget: { limit: LIMIT, period: "day", calendar: true } } } } },
          { start: Date.UTC(2026, 0, 1) + offset },
        );
        const ref = new Ledger();

        const check = () => {
          const now = s.clock.now();
          for (const key of ["a", "b"]) {
            const live = s.registry.context(`key:${key}`);
            if (!live) continue;
            // The actor applies a due reset lazily; read it as the next event would see it.
            const budget = scopeAdvance(live, now).ctx.budgets[0]!;
            expect(budget.used, `used of ${key}`).toBe(ref.usedAt(key, now));
            expect(budget.reserved, `reserved of ${key}`).toBe(ref.reservedOf(key));
            expect(budget.used).toBeLessThanOrEqual(LIMIT + ref.overAt(key, now));
            expect(budget.periodStart).toBe(Math.floor(now / DAY) * DAY);
          }
        };

        for (const st of steps) {
          const now = s.clock.now();
          switch (st.op) {
            case "admit": {
              const committed = ref.usedAt(st.key, now) + ref.reservedOf(st.key);
              const fits = committed < LIMIT && committed + st.est <= LIMIT;
              const d = s.admit({ key: st.key, model: "m", cost: st.est });
              if (fits) {
                expect(d.decision).toBe("admit");
                if (d.decision === "admit") {
                  ref.leases.push({ id: d.lease, key: st.key, est: st.est, expiresAt: now + LEASE_TTL, state: "live", tombUntil: 0 });
                }
              } else {
                // Exact with random 0: until the next midnight UTC.
                expect(d).toMatchObject({ decision: "reject", reason: "budget_exhausted", retryAfterMs: (Math.floor(now / DAY) + 1) * DAY - now });
              }
              break;
            }
            case "report": {
              const l = ref.leases[st.pick % Math.max(1, ref.leases.length)];
              if (!l) break;
              const rep = { lease: l.id, outcome: "ok" as const, ...(st.actual !== undefined ? { cost: st.actual } : {}), ...(st.named ? { key: l.key, model: "m" } : {}) };
              const tombLive = l.tombUntil > now;
              if (l.state === "live") {
                expect(s.report(rep).status).toBe("applied");
                l.state = "reported";
                l.tombUntil = now + LEASE_TTL;
                ref.settle(l.key, now, st.actual ?? l.est, l.est);
              } else if (tombLive && l.state === "reported") {
                expect(s.report(rep).status).toBe("duplicate");
              } else if (tombLive && l.state === "expired") {
                expect(s.report(rep).status).toBe("late");
                const actual = st.actual ?? l.est;
                // Settled at its estimate on expiry; the difference comes now.
                ref.settle(l.key, now, actual - l.est, 0);
                l.state = "reported";
                l.tombUntil = now + LEASE_TTL;
              } else if (st.named) {
                // Long forgotten: counted as usage with no lease behind it (an estimate of nothing).
                expect(s.report(rep).status).toBe("orphan");
                ref.settle(l.key, now, st.actual ?? 0, 0);
                l.state = "reported";
                l.tombUntil = now + LEASE_TTL;
              } else {
                expect(() => s.report(rep)).toThrow(/unknown or long expired/);
              }
              break;
            }
            case "orphan": {
              const id = `L-elsewhere-${st.key}-${st.n}`;
              const until = ref.orphans.get(id);
              const status = s.report({ lease: id, key: st.key, model: "m", outcome: "ok", cost: st.actual }).status;
              if (until !== undefined && until > now) expect(status).toBe("duplicate");
              else {
                expect(status).toBe("orphan");
                ref.settle(st.key, now, st.actual, 0);
                ref.orphans.set(id, now + LEASE_TTL);
              }
              break;
            }
            case "advance":
              s.clock.advance(st.ms);
              ref.expireUpTo(s.clock.now());
              break;
          }
          check();
        }

        // Everything in flight runs out: nothing stays reserved.
        s.clock.advance(LEASE_TTL);
        ref.expireUpTo(s.clock.now());
        check();
        for (const key of ["a", "b"]) {
          const c = s.registry.context(`key:${key}`);
          if (c) expect(c.budgets[0]!.reserved).toBe(0);
        }
      }),
    );
  });
});
