/**
 * The durable report path on virtual time: plan → journal → apply on ack, expiries
 * journaled the same way, and restore (snapshots + replay) giving the same usage.
 */
import { describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock.js";
import { Admissions } from "../../src/admission/Admissions.js";
import type { JournalEntry, LogEntry, UsageJournal } from "../../src/persistence/entry.js";
import { Restorer, withoutInFlight } from "../../src/persistence/restore.js";
import type { ScopeSnapshot } from "../../src/persistence/SnapshotStore.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { admitRequestSchema, reportSchema, type ReportInput } from "../../src/protocol/schemas.js";
import { ScopeRegistry } from "../../src/registry/ScopeRegistry.js";
import { SluiceRequestError } from "../../src/protocol/errors.js";
import { flush } from "../admission/helpers.js";

const POLICY = {
  leaseTtlMs: 10_000,
  scopes: {
    key: { default: { parents: { team: "t" }, concurrency: 2 } },
    team: { default: { budget: { limit: 100, period: "month", calendar: true } } },
  },
};

/** A journal whose appends wait until the test acknowledges (or fails) them, with JetStream's msgID dedupe. */
class FakeJournal implements UsageJournal {
  readonly stored: { seq: number; entry: LogEntry }[] = [];
  private readonly ids = new Map<string, number>();
  private waiting: { entry: LogEntry; msgID?: string; resolve: (a: { seq: number; duplicate: boolean }) => void; reject: (e: Error) => void }[] = [];
  get inFlight(): number {
    return this.waiting.length;
  }
  append(entry: LogEntry, msgID: string | undefined) {
    return new Promise<{ seq: number; duplicate: boolean }>((resolve, reject) => this.waiting.push({ entry: structuredClone(entry), msgID, resolve, reject }));
  }
  /** Store and acknowledge the first `n` (default all) appends, in order. */
  ack(n = this.waiting.length): void {
    for (const w of this.waiting.splice(0, n)) {
      const dup = w.msgID !== undefined ? this.ids.get(w.msgID) : undefined;
      if (dup !== undefined) {
        w.resolve({ seq: dup, duplicate: true });
        continue;
      }
      const seq = this.stored.length + 1;
      this.stored.push({ seq, entry: w.entry });
      if (w.msgID !== undefined) this.ids.set(w.msgID, seq);
      w.resolve({ seq, duplicate: false });
    }
  }
  /** Store the first append but lose its ack (a timeout). */
  storeButFail(): void {
    const w = this.waiting.shift()!;
    const seq = this.stored.length + 1;
    this.stored.push({ seq, entry: w.entry });
    if (w.msgID !== undefined) this.ids.set(w.msgID, seq);
    w.reject(new Error("TIMEOUT"));
  }
  failAll(): void {
    for (const w of this.waiting.splice(0)) w.reject(new Error("no responders"));
  }
}

function setup(journal = new FakeJournal(), clock = new ManualClock(Date.UTC(2026, 10, 23, 9))) {
  const registry = new ScopeRegistry({ policy: parsePolicy(POLICY), clock });
  const dirty = new Set<string>();
  const admissions = new Admissions({ registry, clock, random: () => 0, journal, changed: (s) => dirty.add(s), maxPendingAppends: 50 });
  const admit = (key: string, cost: number) => {
    const d = admissions.admit(admitRequestSchema.parse({ key, model: "m", cost }));
    if (d instanceof Promise || d.decision !== "admit") throw new Error(`expected admit: ${JSON.stringify(d)}`);
    return d.lease;
  };
  const report = (rep: ReportInput) => admissions.reportDurably([reportSchema.parse(rep)])[0]!;
  const used = (scope: string) => (registry.context(scope) ?? registry.dormantContext(scope))!.budgets[0]!.used;
  const reserved = (scope: string) => registry.context(scope)!.budgets[0]!.reserved;
  return { clock, registry, admissions, journal, admit, report, used, reserved, dirty };
}

describe("durable report path", () => {
  it("journals a report before applying it, and answers once it is applied", async () => {
    const s = setup();
    const lease = s.admit("a", 2);
    expect(s.reserved("team:t")).toBe(2);
    const r = s.report({ lease, outcome: "ok", cost: 1.5 });
    expect(r).toBeInstanceOf(Promise);
    await flush();
    // Not applied before the journal has it.
    expect(s.used("team:t")).toBe(0);
    expect(s.journal.inFlight).toBe(1);
    expect(s.admissions.pendingAppends).toBe(1);
    s.journal.ack();
    expect(await r).toEqual({ ok: true, status: "applied" });
    expect(s.used("team:t")).toBe(1.5);
    expect(s.reserved("team:t")).toBe(0);
    expect(s.admissions.appliedSeq).toBe(1);
    expect(s.journal.stored[0]!.entry).toMatchObject({ v: 1, type: "use", status: "applied", lease, scopes: ["key:a", "model:m", "team:t"], usage: { cost: 1.5 } });
    expect(s.dirty.has("team:t")).toBe(true);
    // A repeat is answered at once, without journaling.
    expect(s.report({ lease, outcome: "ok", cost: 1.5 })).toEqual({ ok: true, status: "duplicate" });
    expect(s.journal.inFlight).toBe(0);
  });

  it("a repeat sent while the first is being journaled waits for it and is a duplicate", async () => {
    const s = setup();
    const lease = s.admit("a", 2);
    const r1 = s.report({ lease, outcome: "ok", cost: 1 });
    const r2 = s.report({ lease, outcome: "ok", cost: 1 });
    await flush();
    expect(s.journal.inFlight).toBe(1);
    s.journal.ack();
    expect(await r1).toEqual({ ok: true, status: "applied" });
    expect(await r2).toEqual({ ok: true, status: "duplicate" });
    expect(s.used("team:t")).toBe(1);
  });

  it("answers unavailable when the journal fails, applies nothing, and counts a retry once", async () => {
    const s = setup();
    const lease = s.admit("a", 2);
    const r = s.report({ lease, outcome: "ok", cost: 1 }) as Promise<unknown>;
    await flush();
    s.journal.failAll();
    await expect(r).rejects.toMatchObject({ code: "unavailable" });
    expect(s.used("team:t")).toBe(0);
    // Stored but the ack lost: the retry's duplicate ack applies it (once).
    const r2 = s.report({ lease, outcome: "ok", cost: 1 }) as Promise<unknown>;
    await flush();
    s.journal.storeButFail();
    await expect(r2).rejects.toMatchObject({ code: "unavailable" });
    const r3 = s.report({ lease, outcome: "ok", cost: 1 }) as Promise<unknown>;
    await flush();
    s.journal.ack();
    expect(await r3).toEqual({ ok: true, status: "applied" });
    expect(s.used("team:t")).toBe(1);
    expect(s.journal.stored).toHaveLength(1);
  });

  it("bounds appends in flight", async () => {
    const s = setup();
    const out = Array.from({ length: 51 }, (_, i) => s.report({ key: `k${i}`, model: "m", outcome: "ok", cost: 1 }));
    expect(out.slice(0, 50).every((o) => o instanceof Promise)).toBe(true);
    expect(out[50]).toBeInstanceOf(SluiceRequestError);
    s.journal.ack();
    await Promise.all(out.slice(0, 50));
    expect(s.used("team:t")).toBe(50);
  });

  it("journals an expiry before settling it; a late report then adds the difference", async () => {
    const s = setup();
    const l1 = s.admit("a", 2);
    s.admit("a", 2);
    expect(() => s.admit("a", 2)).toThrow(); // concurrency 2
    s.clock.advance(10_000);
    await flush();
    // Both expiries are being journaled: slots still held, nothing settled.
    expect(s.journal.inFlight).toBe(2);
    expect(s.registry.context("key:a")!.held).toBe(2);
    // A report arriving meanwhile waits for the expiry and is late.
    const late = s.report({ lease: l1, outcome: "ok", cost: 3 });
    s.journal.ack();
    await flush();
    expect(s.registry.context("key:a")!.held).toBe(0);
    expect(s.used("team:t")).toBe(4);
    s.journal.ack();
    expect(await late).toEqual({ ok: true, status: "late" });
    expect(s.used("team:t")).toBe(5);
    expect(s.journal.stored.map((e) => [(e.entry as JournalEntry).status, (e.entry as JournalEntry).usage.cost])).toEqual([
      ["expired", 2],
      ["expired", 2],
      ["late", 1],
    ]);
  });

  it("an expiry that cannot be journaled is retried; the lease keeps its slot until then", async () => {
    const s = setup();
    s.admit("a", 2);
    s.clock.advance(10_000);
    await flush();
    s.journal.failAll();
    await flush();
    expect(s.registry.context("key:a")!.held).toBe(1);
    s.clock.advance(1_000);
    await flush();
    expect(s.journal.inFlight).toBe(1);
    s.journal.ack();
    await flush();
    expect(s.registry.context("key:a")!.held).toBe(0);
    expect(s.used("team:t")).toBe(2);
  });
});

describe("restore: snapshots and replay", () => {
  it("replaying the journal onto the snapshots gives the acknowledged usage, without leases or reservations", async () => {
    const s = setup();
    const costs = [0.125, 0.25, 0.375];
    let sum = 0;
    const snaps: ScopeSnapshot[] = [];
    for (let i = 0; i < 30; i++) {
      const lease = s.admit(`k${i % 3}`, 0.5);
      const r = s.report({ lease, outcome: "ok", cost: costs[i % 3] });
      s.journal.ack();
      await r;
      sum += costs[i % 3]!;
      s.clock.advance(10);
      if (i === 12) {
        // A snapshot of the team scope only, mid-way (another admission in flight: its reservation is dropped on restore).
        s.admit("k9", 7);
        snaps.push({ seq: s.admissions.appliedSeq, scope: "team:t", ctx: structuredClone(s.registry.context("team:t")!) });
      }
    }
    expect(s.used("team:t")).toBeCloseTo(sum, 12);

    const clock = new ManualClock(s.clock.now());
    const registry = new ScopeRegistry({ policy: parsePolicy(POLICY), clock });
    const restorer = new Restorer(registry);
    restorer.load(snaps);
    expect(restorer.replayFrom).toBe(14);
    for (const { seq, entry } of s.journal.stored) if (seq >= restorer.replayFrom) restorer.apply(seq, entry);
    const team = registry.dormantContext("team:t")!;
    expect(team.budgets[0]!.used).toBe(sum);
    expect(team.budgets[0]!.reserved).toBe(0);
    expect(team.held).toBe(0);
    expect(registry.size).toBe(0); // dormant, no actors
    // Key scopes had no snapshot: only the entries after the oldest snapshot reach them (no budget there anyway).
    expect(registry.dormantContext("key:k0")).toBeDefined();
    expect(registry.get("team:t").getSnapshot().context.budgets[0]!.used).toBe(sum);
  });

  it("after a complete snapshot round, replay starts after its sequence for every scope", () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23, 9));
    const registry = new ScopeRegistry({ policy: parsePolicy(POLICY), clock });
    const restorer = new Restorer(registry);
    const ctx = (used: number) => {
      const c = registry.get("team:t").getSnapshot().context;
      return { ...c, budgets: [{ ...c.budgets[0]!, used, reserved: 4 }] };
    };
    const snap = ctx(10);
    registry.remove("team:t");
    restorer.load([{ seq: 5, scope: "team:t", ctx: snap }], 20);
    expect(restorer.replayFrom).toBe(21);
    const e = (cost: number): JournalEntry => ({ v: 1, ts: clock.now(), type: "use", scopes: ["team:t"], usage: { tokens: 0, cost, requests: 1 }, status: "orphan", key: "a", model: "m" });
    restorer.apply(20, e(100)); // covered by the round
    restorer.apply(21, e(1));
    expect(registry.dormantContext("team:t")!.budgets[0]).toMatchObject({ used: 11, reserved: 0 });
    expect([...restorer.touched]).toEqual(["team:t"]);
  });

  it("an operator reset is journaled before it is applied, and replays between the same reports", async () => {
    const s = setup();
    const lease = s.admit("a", 5);
    const applied = s.report({ lease, outcome: "ok", cost: 5 });
    s.journal.ack();
    await applied;
    expect(s.used("team:t")).toBe(5);

    const reset = s.admissions.reset("team:t", "usage");
    expect(reset).toBeInstanceOf(Promise);
    // Not applied before the journal has it.
    expect(s.used("team:t")).toBe(5);
    s.journal.ack();
    await reset;
    expect(s.used("team:t")).toBe(0);
    expect(s.journal.stored.map((e) => e.entry.type)).toEqual(["use", "reset"]);

    // A failed append is answered unavailable and resets nothing.
    const lease2 = s.admit("a", 2);
    const p2 = s.report({ lease: lease2, outcome: "ok", cost: 2 });
    s.journal.ack();
    await p2;
    const failed = s.admissions.reset("team:t", "usage") as Promise<void>;
    s.journal.failAll();
    await expect(failed).rejects.toMatchObject({ code: "unavailable", message: expect.stringMatching(/^reset not recorded/) });
    expect(s.used("team:t")).toBe(2);

    // Replayed onto a fresh registry: the same usage, reset included.
    const registry = new ScopeRegistry({ policy: parsePolicy(POLICY), clock: s.clock });
    const restorer = new Restorer(registry);
    for (const { seq, entry } of s.journal.stored) restorer.apply(seq, entry);
    expect(registry.dormantContext("team:t")!.budgets[0]!.used).toBe(2);
  });

  it("a reset wakes a passivated scope rather than missing it", () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23, 9));
    const registry = new ScopeRegistry({ policy: parsePolicy(POLICY), clock });
    const admissions = new Admissions({ registry, clock, random: () => 0 });
    const d = admissions.admit(admitRequestSchema.parse({ key: "a", model: "m", cost: 7 })) as { lease: string };
    admissions.report(reportSchema.parse({ lease: d.lease, outcome: "ok", cost: 7 }));
    registry.remove("team:t", true);
    expect(registry.dormantContext("team:t")!.budgets[0]!.used).toBe(7);
    expect(admissions.reset("team:t", "usage")).toBeUndefined();
    expect(registry.context("team:t")!.budgets[0]!.used).toBe(0);
  });

  it("withoutInFlight zeroes held and every budget's reservation, whatever the budget shape", () => {
    const ctx = { held: 3, budget: { used: 1, reserved: 2 }, budgets: [{ used: 1, reserved: 2 }, { used: 0, reserved: 5 }] } as any;
    expect(withoutInFlight(ctx)).toEqual({ held: 0, budget: { used: 1, reserved: 0 }, budgets: [{ used: 1, reserved: 0 }, { used: 0, reserved: 0 }] });
  });

  it("restored tombstones make a repeat of a replayed report a duplicate and a late report count the difference", () => {
    const s = setup();
    s.admissions.restoreTombstone({ v: 1, ts: 0, type: "use", scopes: ["key:a", "model:m", "team:t"], usage: { tokens: 0, cost: 1, requests: 1 }, lease: "L-1", status: "applied", key: "a", model: "m" });
    s.admissions.restoreTombstone({ v: 1, ts: 0, type: "use", scopes: ["key:a", "model:m", "team:t"], usage: { tokens: 0, cost: 2, requests: 1 }, lease: "L-2", status: "expired", key: "a", model: "m" });
    s.admissions.restoredUpTo(2);
    expect(s.report({ lease: "L-1", outcome: "ok", cost: 1 })).toEqual({ ok: true, status: "duplicate" });
    const late = s.report({ lease: "L-2", outcome: "ok", cost: 3 });
    expect(late).toBeInstanceOf(Promise);
  });
});
