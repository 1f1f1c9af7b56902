import { describe, expect, it, vi } from "vitest";
import { Admissions } from "../../src/admission/Admissions.js";
import { ManualClock } from "../../src/clock.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { admitRequestSchema, reportSchema } from "../../src/protocol/schemas.js";
import { Passivator } from "../../src/registry/Passivator.js";
import { ScopeRegistry } from "../../src/registry/ScopeRegistry.js";

const MINUTE = 60_000;

function setup(doc: unknown, idleMs = 10 * MINUTE) {
  const clock = new ManualClock(Date.UTC(2026, 10, 23, 8));
  const registry = new ScopeRegistry({ policy: parsePolicy(doc), clock });
  const admissions = new Admissions({ registry, clock, random: () => 0 });
  const passivator = new Passivator({ registry, clock, idleMs, sweepEveryMs: 1_000, busy: (s) => admissions.hasWaitersOn(s) });
  passivator.start();
  const admit = (body: Record<string, unknown>) => admissions.admit(admitRequestSchema.parse({ model: "m", ...body })) as any;
  const report = (body: Record<string, unknown>) => admissions.report(reportSchema.parse(body));
  return { clock, registry, admissions, passivator, admit, report };
}

describe("passivation - idle actors on virtual time", () => {
  it("an idle scope with usage is stopped, and comes back with identical state", () => {
    const s = setup({ scopes: { key: { default: { rpm: 10, budget: { limit: 5, period: "day", calendar: true } } } } });
    const d = s.admit({ key: "k", cost: 1 });
    s.report({ lease: d.lease, outcome: "ok", cost: 1.25 });
    const before = s.registry.context("key:k")!;
    s.clock.advance(10 * MINUTE + 1_000);
    expect(s.registry.peek("key:k")).toBeUndefined();
    expect(s.registry.dormantContext("key:k")).toEqual(before);
    expect(s.passivator.counts.kept).toBeGreaterThanOrEqual(1);
    // Next use revives it from the kept context: the same usage, the same limits.
    expect(s.admit({ key: "k", cost: 3.75 }).decision).toBe("admit");
    expect(s.registry.context("key:k")!.budgets[0]).toMatchObject({ used: 1.25, reserved: 3.75 });
    expect(s.admit({ key: "k", cost: 0.01 })).toMatchObject({ decision: "reject", reason: "budget_exhausted", scope: "key:k" });
  });

  it("a scope that holds only defaults is dropped, not kept", () => {
    const s = setup({ scopes: { key: { default: { rpm: 60 } } } });
    const d = s.admit({ key: "k" });
    s.report({ lease: d.lease, outcome: "ok" });
    s.clock.advance(11 * MINUTE);
    expect(s.registry.peek("key:k")).toBeUndefined();
    // A minute refills the bucket: nothing worth keeping.
    expect(s.registry.dormantContext("key:k")).toBeUndefined();
    expect(s.registry.size).toBe(0);
  });

  it("never passivates a scope with a lease in flight or a caller waiting on it", async () => {
    const s = setup({ leaseTtlMs: 3_600_000, scopes: { key: { default: { concurrency: 5 } }, team: { default: { concurrency: 1 } } } }, MINUTE);
    const first = s.admit({ key: "a", scopes: { team: "t" } });
    const waiting = s.admit({ key: "b", scopes: { team: "t" }, waitMs: 5 * MINUTE });
    s.clock.advance(2 * MINUTE);
    expect(s.registry.peek("key:a")).toBeDefined();
    expect(s.registry.peek("team:t")).toBeDefined();
    s.report({ lease: first.lease, outcome: "ok" });
    expect(await waiting).toMatchObject({ decision: "admit" });
    // Once nothing holds them, they go too.
    s.clock.advance(2 * MINUTE);
    expect(s.registry.peek("key:a")).toBeUndefined();
  });

  it("a policy change while a scope sleeps reaches it when it wakes, usage kept", () => {
    const s = setup({ scopes: { key: { default: { budget: { limit: 5 } } } } });
    const d = s.admit({ key: "k", cost: 2 });
    s.report({ lease: d.lease, outcome: "ok", cost: 2 });
    s.clock.advance(11 * MINUTE);
    expect(s.registry.dormantContext("key:k")).toBeDefined();
    s.registry.setPolicy(parsePolicy({ scopes: { key: { default: { budget: { limit: 3 } } } } }));
    expect(s.admit({ key: "k", cost: 1.5 })).toMatchObject({ decision: "reject", reason: "budget_exhausted" });
    expect(s.registry.context("key:k")!.budgets[0]!.used).toBe(2);
  });
});

describe("passivation - the bound on scopes counts sleeping ones too", () => {
  it("refuses a new scope unavailable once live plus passivated reach maxScopes, but wakes a sleeping one", () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23, 8));
    // key:a, key:b and model:m all keep usage (budgets), so asleep they still fill a bound of three.
    const registry = new ScopeRegistry({ policy: parsePolicy({ scopes: { key: { default: { budget: { limit: 5 } } }, model: { default: { budget: { limit: 50 } } } } }), clock, maxScopes: 3 });
    const admissions = new Admissions({ registry, clock, random: () => 0 });
    const passivator = new Passivator({ registry, clock, idleMs: MINUTE, sweepEveryMs: 1_000 });
    passivator.start();
    const admit = (key: string) => admissions.admit(admitRequestSchema.parse({ key, model: "m", cost: 1 })) as any;
    admissions.report(reportSchema.parse({ lease: admit("a").lease, outcome: "ok" }));
    admissions.report(reportSchema.parse({ lease: admit("b").lease, outcome: "ok" }));
    clock.advance(2 * MINUTE);
    expect(registry.dormantContext("key:a")).toBeDefined();
    expect(() => admit("c")).toThrow(/too many scopes/);
    // Refused as a whole: nothing was created for it.
    expect(registry.peek("key:c")).toBeUndefined();
    // key:a wakes with its usage; no new scope was needed.
    expect(admit("a").decision).toBe("admit");
    expect(registry.context("key:a")!.budgets[0]).toMatchObject({ used: 1, reserved: 1 });
    // A scope without limits needs no room: it never sleeps with state, so a full registry does not refuse it.
    const named = (scopes: Record<string, string>) => admissions.admit(admitRequestSchema.parse({ key: "a", model: "m", scopes })) as any;
    expect(named({ job: "j1" }).decision).toBe("admit");
    expect(registry.peek("job:j1")).toBeDefined();
    clock.advance(2 * MINUTE);
    expect(registry.peek("job:j1")).toBeUndefined();
    expect(registry.isDormant("job:j1")).toBe(false); // dropped as pristine, not kept
  });
});

describe("passivation - slices sized to the idle time", () => {
  it("looks at only as many actors per slice as a pass in half the idle time needs, and still gets to all of them", () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23, 8));
    const registry = new ScopeRegistry({ policy: parsePolicy({ scopes: { key: { default: { rpm: 10 } } } }), clock });
    for (let i = 0; i < 1_000; i++) registry.get(`key:k${i}`);
    // 1,000 actors, a pass per 30 s in slices every 100 ms: 4 per slice, so the floor of 64 applies.
    const passivator = new Passivator({ registry, clock, idleMs: MINUTE, sweepEveryMs: 100 });
    const later = clock.now() + 2 * MINUTE;
    expect(passivator.sweep(later)).toBe(64);
    expect(registry.size).toBe(936);
    let sweeps = 1;
    while (registry.size > 0) {
      passivator.sweep(later);
      sweeps++;
    }
    expect(sweeps).toBe(Math.ceil(1_000 / 64));
    // Bounded above by perSweep: 5,000 actors idle after 100 ms would want 10,000 per slice.
    const big = new ScopeRegistry({ policy: parsePolicy({ scopes: { key: { default: { rpm: 10 } } } }), clock });
    for (let i = 0; i < 5_000; i++) big.get(`key:k${i}`);
    const eager = new Passivator({ registry: big, clock, idleMs: 100, sweepEveryMs: 100, perSweep: 2_000 });
    expect(eager.sweep(later)).toBe(2_000);
  });
});

describe("passivation - a late slice", () => {
  it("walks as far as the time since the last slice asks, not one interval's worth", () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23, 8));
    const registry = new ScopeRegistry({ policy: parsePolicy({ scopes: { key: { default: { rpm: 10 } } } }), clock });
    for (let i = 0; i < 2_000; i++) registry.get(`key:k${i}`);
    const passivator = new Passivator({ registry, clock, idleMs: 1_000, sweepEveryMs: 100 });
    const later = clock.now() + 5_000;
    // 2,000 live, a pass per 500 ms: 400 per 100 ms.
    expect(passivator.sweep(later)).toBe(400);
    // The next comes 300 ms later (a busy event loop): three intervals' worth of 1,600 live.
    expect(passivator.sweep(later + 300)).toBe(960);
  });
});

/**
 * `perTick` new keys every 100 ms for `ticks` ticks, each used once: the most live actors
 * seen, and when the first key was passivated (ms after the start).
 */
function flood(registry: ScopeRegistry, clock: ManualClock, perTick: number, ticks: number): { mostLive: number; firstGoneAt?: number } {
  let key = 0;
  let mostLive = 0;
  let firstGoneAt: number | undefined;
  const start = clock.now();
  for (let tick = 0; tick < ticks; tick++) {
    for (let i = 0; i < perTick; i++) registry.get(`key:k${key++}`);
    clock.advance(100);
    mostLive = Math.max(mostLive, registry.size);
    if (firstGoneAt === undefined && registry.peek("key:k0") === undefined) firstGoneAt = clock.now() - start;
  }
  return { mostLive, firstGoneAt };
}

describe("passivation - a stream of new scopes", () => {
  it("keeps pace with new scopes arriving at more than half the walking rate", () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23, 8));
    const registry = new ScopeRegistry({ policy: parsePolicy({ scopes: { key: { default: { rpm: 10 } } } }), clock });
    // Walks at most 200 actors per 100 ms slice (2,000/s); 120 new keys arrive per slice (1,200/s), each used once.
    const passivator = new Passivator({ registry, clock, idleMs: 3_000, sweepEveryMs: 100, perSweep: 200 });
    passivator.start();
    const { mostLive, firstGoneAt } = flood(registry, clock, 120, 200);
    // A pass covers the actors live when it began, then starts again at the oldest: the first key goes
    // 3.3 s after its use (idle 3 s), and at most 5,200 are live. A walk that went on to the new scopes at
    // the end of the Map came back to the old ones only when it caught up with the stream: 7.2 s and 8,600.
    expect(firstGoneAt).toBeLessThanOrEqual(4_000);
    expect(mostLive).toBeLessThanOrEqual(6_000);
    expect(passivator.counts.dropped).toBeGreaterThan(18_000);
  });
});

describe("passivation - a flood of idle scopes", () => {
  it("passivates at most maxPassivatedPerSweep per slice, and comes back sooner while it is behind", () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23, 8));
    const registry = new ScopeRegistry({ policy: parsePolicy({ scopes: { key: { default: { rpm: 10 } } } }), clock });
    for (let i = 0; i < 1_000; i++) registry.get(`key:k${i}`);
    clock.advance(1_000);
    const passivator = new Passivator({ registry, clock, idleMs: 1_000, sweepEveryMs: 100, maxPassivatedPerSweep: 150 });
    passivator.start();
    // All idle. A slice looks at a fifth of the live actors (a pass per half idle time) but
    // passivates at most 150: the first two stop at that bound, and each is followed 10 ms later.
    clock.advance(100);
    expect(registry.size).toBe(850);
    clock.advance(10);
    expect(registry.size).toBe(700);
    // 140 looked at, 140 passivated, under the bound: the next slice is due 100 ms later, not 10.
    clock.advance(10);
    expect(registry.size).toBe(560);
    clock.advance(90);
    expect(registry.size).toBe(560);
    clock.advance(10);
    expect(registry.size).toBe(448);
    expect(passivator.counts.dropped).toBe(552);
  });

  it("keeps up with new scopes arriving faster than a slice per sweepEveryMs could passivate them", () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23, 8));
    const registry = new ScopeRegistry({ policy: parsePolicy({ scopes: { key: { default: { rpm: 10 } } } }), clock });
    // 300 new keys per 100 ms, each used once; at most 100 passivated per slice: a slice per 100 ms
    // would fall behind by 200 every 100 ms, and the live actors would grow for as long as the flood lasts.
    const passivator = new Passivator({ registry, clock, idleMs: 1_000, sweepEveryMs: 100, maxPassivatedPerSweep: 100 });
    passivator.start();
    const { mostLive } = flood(registry, clock, 300, 200);
    // A scope goes between 1 and about 1.5 s after its use: about 4,500 live at most, against 43,000 without hurrying.
    expect(mostLive).toBeLessThanOrEqual(5_000);
    expect(passivator.counts.dropped).toBeGreaterThan(55_000);
  });
});

describe("passivation - the cap on live actors", () => {
  it("over 80% of maxLive, passivates actors that hold nothing before their idle time, keeping their state", () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23, 8));
    const registry = new ScopeRegistry({
      policy: parsePolicy({ leaseTtlMs: 3_600_000, scopes: { key: { default: { rpm: 10, concurrency: 5 } }, model: { default: { rpm: 1_000 } } } }),
      clock,
      maxLive: 100,
    });
    const admissions = new Admissions({ registry, clock, random: () => 0 });
    const passivator = new Passivator({ registry, clock, idleMs: 10 * MINUTE, sweepEveryMs: 100, busy: (s) => admissions.hasWaitersOn(s) });
    passivator.start();
    // key:k0…k98 and model:m: 100 live, all used within the last second; k0…k9 hold a lease each, the rest reported.
    for (let i = 0; i < 99; i++) {
      const d = admissions.admit(admitRequestSchema.parse({ key: `k${i}`, model: "m" })) as { lease: string };
      if (i >= 10) admissions.report(reportSchema.parse({ lease: d.lease, outcome: "ok" }));
    }
    expect(registry.size).toBe(100);
    clock.advance(100);
    // Back to the target of 80, long before the idle time; none that holds a lease went.
    expect(registry.size).toBe(80);
    expect(passivator.counts.early).toBe(20);
    for (let i = 0; i < 10; i++) expect(registry.peek(`key:k${i}`)).toBeDefined();
    // Passivated early, a key keeps its usage: 9 of its 10 requests a minute are left.
    const gone = [...Array(99).keys()].map((i) => `key:k${i}`).find((s) => registry.peek(s) === undefined)!;
    expect(registry.dormantContext(gone)!.buckets.rpm!.level).toBe(9);
    // Under the target: nothing more goes before its idle time.
    clock.advance(1_000);
    expect(registry.size).toBe(80);
  });

  it("over the target with nothing it may passivate, keeps its usual pace rather than walking every 10 ms", () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23, 8));
    const registry = new ScopeRegistry({ policy: parsePolicy({ leaseTtlMs: 3_600_000, scopes: { key: { default: { concurrency: 1 } } } }), clock, maxLive: 10 });
    const admissions = new Admissions({ registry, clock, random: () => 0 });
    // key:k0…k8 and model:m live (10, over the target of 8), every key holding a lease.
    for (let i = 0; i < 9; i++) admissions.admit(admitRequestSchema.parse({ key: `k${i}`, model: "m" }));
    const passivator = new Passivator({ registry, clock, idleMs: MINUTE, sweepEveryMs: 100 });
    const sweep = vi.spyOn(passivator, "sweep");
    passivator.start();
    // The first slice passivates model:m (it holds nothing) and, still over the target, comes back 10 ms later.
    clock.advance(100);
    expect(sweep).toHaveBeenCalledTimes(1);
    expect(registry.size).toBe(9);
    clock.advance(10);
    expect(sweep).toHaveBeenCalledTimes(2);
    // That one finds nothing it may passivate: the next comes 100 ms later.
    clock.advance(90);
    expect(sweep).toHaveBeenCalledTimes(2);
    clock.advance(10);
    expect(sweep).toHaveBeenCalledTimes(3);
    expect(registry.size).toBe(9);
  });

  it("refuses an admission that would bring a scope to life past maxLive, and creates nothing for it; reports still wake what they settle", () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23, 8));
    const registry = new ScopeRegistry({ policy: parsePolicy({ scopes: { key: { default: { budget: { limit: 5 } } } } }), clock, maxLive: 3 });
    const admissions = new Admissions({ registry, clock, random: () => 0 });
    const admit = (key: string) => admissions.admit(admitRequestSchema.parse({ key, model: "m", cost: 1 })) as any;
    const a = admit("a");
    admit("b");
    expect(registry.size).toBe(3);
    expect(() => admit("c")).toThrow(/too many live scopes/);
    expect(registry.peek("key:c")).toBeUndefined();
    expect(registry.isDormant("key:c")).toBe(false);
    // A live scope is still served.
    expect(admit("a").decision).toBe("admit");
    // key:a asleep (passivated by hand here) and the cap reached again: a report on its lease still wakes
    // it, past the cap; settling what was admitted is never refused.
    registry.remove("key:b", true);
    registry.remove("key:a", true);
    admit("c");
    admit("d");
    expect(registry.size).toBe(3);
    expect(admissions.report(reportSchema.parse({ lease: a.lease, outcome: "ok", cost: 2 }))).toMatchObject({ status: "applied" });
    expect(registry.size).toBe(4);
    expect(registry.context("key:a")!.budgets[0]).toMatchObject({ used: 2, reserved: 1 });
  });
});

describe("passivation - sleeping scopes that time brings back to defaults", () => {
  const HOUR = 60 * MINUTE;

  it("are dropped once their buckets refill and their budget period is over; a lifetime budget keeps its scope", () => {
    const s = setup(
      {
        scopes: {
          key: { default: { rpm: 2, budget: { limit: 100, period: "day", calendar: true } } },
          team: { default: { budget: { limit: 100, unit: "requests" } } },
        },
      },
      MINUTE,
    );
    for (const key of ["a", "b"]) s.admit({ key, cost: 1, scopes: { team: "t" } });
    // The leases expire at their estimate (a minute), then the scopes sleep.
    s.clock.advance(3 * MINUTE);
    // Asleep, usage kept: the day's budget (and the team's, which has no period).
    expect(s.registry.dormantCount).toBe(3);
    expect(s.passivator.counts.reclaimed).toBe(0);
    // The next day: the keys' budgets would reset and their buckets are full, so they are gone; the team stays.
    s.clock.advance(24 * HOUR);
    expect(s.passivator.counts.reclaimed).toBe(2);
    expect(s.registry.isDormant("key:a")).toBe(false);
    expect(s.registry.isDormant("team:t")).toBe(true);
    expect(s.registry.dormantContext("team:t")!.budgets[0]!.used).toBe(2);
    // A key that comes back starts afresh, as it would have after the reset.
    expect(s.admit({ key: "a" }).decision).toBe("admit");
    expect(s.registry.context("key:a")!.budgets[0]!.used).toBe(0);
  });

  it("a live scope idle past its budget's period is dropped when passivated, not kept asleep", () => {
    const s = setup({ scopes: { key: { default: { rpm: 2, budget: { limit: 100, period: "hour", calendar: true } } } } }, 2 * HOUR);
    const d = s.admit({ key: "a", cost: 1 });
    s.report({ lease: d.lease, outcome: "ok", cost: 1 });
    expect(s.registry.context("key:a")!.budgets[0]!.used).toBe(1);
    // Idle for two hours: the hour's budget has reset by the time it is passivated.
    s.clock.advance(2 * HOUR + MINUTE);
    expect(s.registry.peek("key:a")).toBeUndefined();
    expect(s.registry.isDormant("key:a")).toBe(false);
    expect([s.passivator.counts.dropped, s.passivator.counts.kept]).toEqual([2, 0]); // the key and its model
  });

  it("are looked at a bounded number per slice, resuming where the last stopped", () => {
    const s = setup({ scopes: { key: { default: { rph: 1 } } } }, MINUTE);
    for (let i = 0; i < 500; i++) s.admit({ key: `k${i}` });
    s.passivator.stop();
    for (let i = 0; i < 50 && s.registry.dormantCount < 500; i++) s.passivator.sweep(s.clock.now() + 2 * MINUTE + i);
    expect(s.registry.dormantCount).toBe(500);
    // Within the hour nothing is back at its defaults; after it, each call drops as many as it looks at, no more.
    expect(s.registry.reclaimDormant(100, s.clock.now() + 30 * MINUTE)).toEqual({ looked: 100, reclaimed: 0 });
    const later = s.clock.now() + 2 * HOUR;
    expect(s.registry.reclaimDormant(120, later)).toEqual({ looked: 120, reclaimed: 120 });
    expect(s.registry.reclaimDormant(1_000, later)).toEqual({ looked: 380, reclaimed: 380 });
    expect(s.registry.dormantCount).toBe(0);
    expect(s.registry.reclaimDormant(10, later)).toEqual({ looked: 0, reclaimed: 0 });
  });
});
