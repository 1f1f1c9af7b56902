/**
 * A restart reads every snapshot: it must do so as one stream, hold them one at a time,
 * and keep what it restores as compactly as passivation would (a million sleeping keys
 * were snapshotted in the heap they must be restored into).
 */
import { Kvm } from "@nats-io/kv";
import { describe, expect, it } from "vitest";
import { scopeClone } from "../../machines/scope.js";
import { Admissions } from "../../src/admission/Admissions.js";
import { ManualClock } from "../../src/clock.js";
import { Persistence } from "../../src/persistence/Persistence.js";
import { Restorer } from "../../src/persistence/restore.js";
import { type ScopeSnapshot, SnapshotStore, limitsId, snapshotKey } from "../../src/persistence/SnapshotStore.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { admitRequestSchema } from "../../src/protocol/schemas.js";
import { ScopeRegistry } from "../../src/registry/ScopeRegistry.js";
import { useNatsServer } from "../helpers/natsFixture.js";

const nats = useNatsServer({ jetstream: true });
const T0 = Date.UTC(2026, 10, 24, 12);
const doc = { scopes: { key: { default: { rpm: 600, budget: { limit: 100, unit: "requests", period: "day", calendar: true } } } } };

describe("restore at scale", () => {
  it("reads every snapshot of the bucket once, the latest of each, skipping its other keys; an empty bucket at once", { timeout: 30_000 }, async () => {
    const empty = await SnapshotStore.open(nats.nc, "RESTORE_EMPTY");
    expect(await empty.forEach(() => expect.unreachable())).toBe(0);

    const store = await SnapshotStore.open(nats.nc, "RESTORE_SOME");
    const snaps: ScopeSnapshot[] = Array.from({ length: 300 }, (_, i) => ({ seq: i + 1, scope: `key:k${i}`, ctx: null }));
    await store.writeAll(snaps);
    await store.writeRoundSeq(300);
    await store.writePolicy({ doc: { scopes: {} }, setAt: T0, base: "x" });
    // Written again: the latest value counts, once.
    await store.writeAll([{ seq: 301, scope: "key:k7", ctx: null }]);
    const seen: ScopeSnapshot[] = [];
    expect(await store.forEach((s) => seen.push(s))).toBe(300);
    expect(new Set(seen.map((s) => s.scope)).size).toBe(300);
    expect(seen.find((s) => s.scope === "key:k7")!.seq).toBe(301);
  });

  it("restores snapshots packed, sharing one limits object among those equal to the policy's, and keeps older limits apart", () => {
    const clock = new ManualClock(T0);
    const registry = new ScopeRegistry({ policy: parsePolicy(doc), clock });
    const source = new ScopeRegistry({ policy: parsePolicy(doc), clock });
    const admissions = new Admissions({ registry: source, clock });
    for (const k of ["a", "b", "c"]) admissions.admit(admitRequestSchema.parse({ key: k, model: "m" }));
    // As a snapshot stores them: JSON, so every context has limits of its own.
    const snap = (scope: string): ScopeSnapshot => ({ seq: 1, scope, ctx: JSON.parse(JSON.stringify(source.context(scope))) });
    const old = snap("key:c");
    old.ctx!.limits = { ...old.ctx!.limits, buckets: [{ ...old.ctx!.limits.buckets[0]!, limit: 60, burst: 60, ratePerMs: 0.001 }] };

    const restorer = new Restorer(registry);
    expect(restorer.load([snap("key:a"), snap("key:b"), old])).toBe(3);
    const [a, b, c] = ["key:a", "key:b", "key:c"].map((s) => registry.dormantContext(s)!);
    expect(a!.limits).toBe(registry.limitsFor("key:a"));
    expect(b!.limits).toBe(a!.limits);
    expect(c!.limits).not.toBe(a!.limits);
    expect(c!.limits.buckets[0]!.limit).toBe(60);
    // What does not survive a restart is gone; the usage is there.
    expect(a!.held).toBe(0);
    expect(a!.budgets[0]).toMatchObject({ used: 0, reserved: 0 });
    expect(a!.buckets.rpm!.level).toBe(599);
    // Waking the one with old limits brings it up to the policy, usage kept.
    registry.get("key:c");
    expect(registry.context("key:c")!.limits.buckets[0]!.limit).toBe(600);
    expect(registry.context("key:c")!.buckets.rpm!.level).toBeLessThanOrEqual(599);
    admissions.close();
  });

  it("a restart restores what was snapshotted, through the stream", { timeout: 30_000 }, async () => {
    const clock = new ManualClock(T0);
    const first = await Persistence.open(nats.nc, "restorescale");
    const registry = new ScopeRegistry({ policy: parsePolicy(doc), clock });
    const admissions = new Admissions({ registry, clock, changed: first.markDirty });
    first.start(registry, admissions, clock);
    for (let i = 0; i < 200; i++) admissions.admit(admitRequestSchema.parse({ key: `k${i}`, model: "m" }));
    await first.stop();
    admissions.close();

    const again = await Persistence.open(nats.nc, "restorescale");
    const registry2 = new ScopeRegistry({ policy: parsePolicy(doc), clock });
    const stats = await again.restore(registry2, new Admissions({ registry: registry2, clock }));
    expect(stats.snapshots).toBe(201);
    expect(registry2.dormantCount).toBe(201);
    expect(registry2.dormantContext("key:k42")!.buckets.rpm!.level).toBe(599);
    expect(registry2.dormantContext("key:k42")!.limits).toBe(registry2.limitsFor("key:k42"));
    await again.stop();
  });

  it("stores each distinct limits once, apart from the snapshots that share them; a restart gives each context its own back", { timeout: 30_000 }, async () => {
    const clock = new ManualClock(T0);
    const policy = parsePolicy({ scopes: { key: { ...doc.scopes.key, overrides: { vip: { rpm: 6000 } } } } });
    const source = new ScopeRegistry({ policy, clock });
    const admissions = new Admissions({ registry: source, clock });
    const keys = ["a", "b", "c", "vip"];
    for (const k of keys) admissions.admit(admitRequestSchema.parse({ key: k, model: "m" }));
    const taken = (k: string, seq: number): ScopeSnapshot => ({ seq, scope: `key:${k}`, ctx: scopeClone(source.context(`key:${k}`)!) });
    const store = await SnapshotStore.open(nats.nc, "RESTORE_LIMITS");
    await store.writeAll(keys.map((k) => taken(k, 1)));
    const kv = await new Kvm(nats.nc).open("RESTORE_LIMITS");
    const id = limitsId(JSON.stringify(source.limitsFor("key:a")));
    const revision = (await kv.get(`l.${id}`))!.revision;
    await store.writeAll([taken("a", 2)]);
    expect((await kv.get(`l.${id}`))!.revision).toBe(revision); // not written again

    const stored: string[] = [];
    for await (const k of await kv.keys("l.>")) stored.push(k);
    expect(stored.sort()).toEqual([`l.${id}`, `l.${limitsId(JSON.stringify(source.context("key:vip")!.limits))}`].sort());
    const raw = (await kv.get(snapshotKey("key:b")))!.json<{ lim: string; ctx: Record<string, unknown> }>();
    expect(raw.lim).toBe(id);
    expect(raw.ctx.limits).toBeUndefined();

    // A restart: the policy's limits shared again, the vip's its own; tools read whole contexts.
    const registry = new ScopeRegistry({ policy, clock });
    const restorer = new Restorer(registry);
    restorer.setStoredLimits(await store.loadLimits());
    expect(await store.forEach((s) => restorer.add(s))).toBe(4);
    expect(restorer.unreadableCount).toBe(0);
    expect(registry.dormantContext("key:a")!.limits).toBe(registry.limitsFor("key:a"));
    expect(registry.dormantContext("key:b")!.limits).toBe(registry.dormantContext("key:a")!.limits);
    expect(registry.dormantContext("key:vip")!.limits.buckets[0]).toMatchObject({ limit: 6000 });
    const all = await store.loadAll();
    expect(all.find((s) => s.scope === "key:vip")).toEqual(JSON.parse(JSON.stringify(taken("vip", 1))));
    admissions.close();
  });
});

describe("snapshot rounds in slices", () => {
  it("copy a few scopes per turn, each with the sequence it includes: a restart replays onto them to exactly the live usage", { timeout: 30_000 }, async () => {
    const budgets = { scopes: { key: { default: { budget: { limit: 1e9, period: "month", calendar: true } } } } };
    const clock = new ManualClock(T0);
    const first = await Persistence.open(nats.nc, "sliced", { takePerTurn: 4 });
    const registry = new ScopeRegistry({ policy: parsePolicy(budgets), clock });
    const admissions = new Admissions({ registry, clock, journal: first.journal, changed: first.markDirty });
    first.start(registry, admissions, clock);
    const costs = [0.125, 0.25, 0.375];
    let n = 0;
    const spend = async (key: string) => {
      const d = admissions.admit(admitRequestSchema.parse({ key, model: "m", cost: 1 })) as { lease: string };
      const [ack] = admissions.reportDurably([{ lease: d.lease, outcome: "ok", cost: costs[n++ % 3]! } as never]);
      expect(await ack).toMatchObject({ ok: true, status: "applied" });
    };
    const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
    for (const k of keys) await spend(k);

    const round = first.snapshot();
    // Between the round's slices: more usage, on scopes of slices taken and to come.
    for (const k of ["k0", "k1", "k17", "k29", "k29"]) await spend(k);
    await round;
    // After the round, before any other: a crash loses nothing journaled.
    for (const k of ["k2", "k29"]) await spend(k);
    const live = Object.fromEntries(keys.map((k) => [k, registry.context(`key:${k}`)!.budgets[0]!.used]));

    const again = await Persistence.open(nats.nc, "sliced");
    const registry2 = new ScopeRegistry({ policy: parsePolicy(budgets), clock });
    await again.restore(registry2, new Admissions({ registry: registry2, clock }));
    for (const k of keys) expect(registry2.dormantContext(`key:${k}`)!.budgets[0]!.used, k).toBe(live[k]);
    admissions.close();
  });
});

describe("restore: snapshots back at their defaults", () => {
  it("are left out when the restart comes after their buckets refilled and their budget periods ended; later entries still count", () => {
    const clock = new ManualClock(T0);
    const source = new ScopeRegistry({ policy: parsePolicy(doc), clock });
    const admissions = new Admissions({ registry: source, clock });
    for (const k of ["a", "b"]) {
      const d = admissions.admit(admitRequestSchema.parse({ key: k, model: "m" })) as { lease: string };
      admissions.report({ lease: d.lease, outcome: "ok" } as never);
    }
    const snap = (scope: string): ScopeSnapshot => ({ seq: 5, scope, ctx: JSON.parse(JSON.stringify(source.context(scope))) });
    expect(snap("key:a").ctx!.budgets[0]!.used).toBe(1);
    admissions.close();

    // The same day: the request budget holds usage, so both are kept.
    const sameDay = new ScopeRegistry({ policy: parsePolicy(doc), clock });
    const r1 = new Restorer(sameDay, T0 + 60_000);
    r1.load([snap("key:a"), snap("key:b")]);
    expect([r1.skipped, sameDay.dormantCount]).toEqual([0, 2]);

    // Two days later both are back at their defaults: left out, and an entry after their snapshot still counts.
    const later = new ScopeRegistry({ policy: parsePolicy(doc), clock });
    const r2 = new Restorer(later, T0 + 2 * 86_400_000);
    r2.load([snap("key:a"), snap("key:b")]);
    expect([r2.skipped, later.dormantCount]).toEqual([2, 0]);
    r2.apply(4, { v: 1, ts: T0 + 2 * 86_400_000, type: "use", scopes: ["key:a"], usage: { tokens: 0, cost: 0, requests: 1 } } as never);
    r2.apply(6, { v: 1, ts: T0 + 2 * 86_400_000, type: "use", scopes: ["key:a"], usage: { tokens: 0, cost: 0, requests: 1 } } as never);
    expect(later.dormantContext("key:a")!.budgets[0]!.used).toBe(1);
  });
});
