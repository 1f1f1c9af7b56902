import { describe, expect, it } from "vitest";
import { LeaseTable, hasBit } from "../../src/admission/LeaseTable.js";

const SCOPES = ["key:k1", "model:m1", "team:t1"];
const table = (maxTombstones = 1_000) => new LeaseTable({ prefix: "L-abc123-", maxLeases: 100_000, maxTombstones });

describe("LeaseTable", () => {
  it("finds a lease by its id, with everything it was added with", () => {
    const t = table();
    const id = t.add(SCOPES, 0b101, 0b010, 120, 0.5, 2_000);
    expect(id.startsWith("L-abc123-")).toBe(true);
    const rec = t.get(id)!;
    expect(rec).toMatchObject({ id, key: "k1", model: "m1", scopes: SCOPES, heldMask: 0b101, probeMask: 0b010, expiresAt: 2_000 });
    expect(rec.estimate).toEqual({ tokens: 120, cost: 0.5, requests: 1 });
    expect(t.size).toBe(1);
    expect(t.tombstone(id)).toBeUndefined();
    expect(t.isLive(rec)).toBe(true);
  });

  it("refuses ids it never issued: other prefixes, malformed, beyond what was issued", () => {
    const t = table();
    const id = t.add(SCOPES, 0, 0, 1, 0, 10);
    const rest = id.slice("L-abc123-".length);
    for (const bad of ["", "L-abc123-", "L-abc124-" + rest, `L-abc123-${rest}x`, "L-abc123--1", "L-abc123-0" + rest, "L-abc123-zzzzzzzzzzzz", "L-abc123-1.5", "L-abc123-zz"]) {
      expect(t.get(bad)).toBeUndefined();
      expect(t.tombstone(bad)).toBeUndefined();
    }
  });

  it("settles once: a tombstone remembers reported or expired until its time, then the id is forgotten", () => {
    const t = table();
    const id = t.add(SCOPES, 0b11, 0, 100, 0, 1_000);
    const rec = t.get(id)!;
    t.settle(rec, true, 5_000);
    t.settle(rec, false, 9_000); // a second settle of the same lease changes nothing
    expect(t.get(id)).toBeUndefined();
    expect(t.isLive(rec)).toBe(false);
    expect(t.tombstone(id)).toMatchObject({ reported: true, until: 5_000, record: { id, key: "k1" } });
    t.pruneTombstones(4_999);
    expect(t.tombstone(id)).toBeDefined();
    t.pruneTombstones(5_000);
    expect(t.tombstone(id)).toBeUndefined();
    expect(t.tombstones).toBe(0);
  });

  it("a freed slot is reused under a new id, and the old id stays unknown", () => {
    const t = table();
    const a = t.add(SCOPES, 0, 0, 1, 0, 1_000);
    t.settle(t.get(a)!, true, 1_000);
    t.pruneTombstones(1_000);
    const b = t.add(SCOPES, 0, 0, 2, 0, 3_000);
    expect(b).not.toBe(a);
    expect(t.get(a)).toBeUndefined();
    expect(t.tombstone(a)).toBeUndefined();
    expect(t.get(b)!.estimate.tokens).toBe(2);
  });

  it("yields due leases in expiry order, also when a lowered TTL makes one expire before those queued", () => {
    const t = table();
    const ids = [t.add(SCOPES, 0, 0, 1, 0, 300), t.add(SCOPES, 0, 0, 2, 0, 500), t.add(SCOPES, 0, 0, 3, 0, 200), t.add(SCOPES, 0, 0, 4, 0, 600)];
    t.settle(t.get(ids[1]!)!, true, 10_000); // reported: not due any more
    expect(t.nextExpiry()).toBe(200);
    expect(t.anyDue(199)).toBe(false);
    expect([...t.due(550)].map((r) => r.estimate.tokens)).toEqual([3, 1]);
    // due() takes them out of the expiry order; they stay live until settled.
    expect(t.size).toBe(3);
    expect([...t.due(550)]).toEqual([]);
    expect([...t.due(600)].map((r) => r.estimate.tokens)).toEqual([4]);
  });

  it("tells the earliest expiry of the live leases holding a slot in a scope", () => {
    const t = table();
    const a = t.add(SCOPES, 0b001, 0, 1, 0, 100);
    t.add(SCOPES, 0b011, 0, 1, 0, 200);
    expect(t.earliestHeldExpiry("key:k1")).toBe(100);
    expect(t.earliestHeldExpiry("model:m1")).toBe(200);
    expect(t.earliestHeldExpiry("team:t1")).toBeUndefined();
    t.settle(t.get(a)!, false, 1_000);
    expect(t.earliestHeldExpiry("key:k1")).toBe(200);
  });

  it("a scope's emptied holding queue, reused for another scope, carries nothing over", () => {
    const t = table();
    const a = t.add(["key:a", "model:m"], 0b01, 0, 1, 0, 100);
    t.settle(t.get(a)!, true, 1_000);
    expect(t.earliestHeldExpiry("key:a")).toBeUndefined();
    for (let i = 0; i < 3; i++) t.add(["key:b", "model:m"], 0b01, 0, 1, 0, 300 + i);
    expect(t.earliestHeldExpiry("key:b")).toBe(300);
    expect(t.earliestHeldExpiry("key:a")).toBeUndefined();
    const c = t.add(["key:a", "model:m"], 0b01, 0, 1, 0, 400);
    expect(t.earliestHeldExpiry("key:a")).toBe(400);
    t.settle(t.get(c)!, true, 1_000);
    expect(t.earliestHeldExpiry("key:a")).toBeUndefined();
    expect(t.earliestHeldExpiry("key:b")).toBe(300);
  });

  it("a late report buries its own lease again for longer; foreign ids get tombstones of their own", () => {
    const t = table();
    const id = t.add(SCOPES, 0, 0, 7, 0, 100);
    const rec = t.get(id)!;
    t.settle(rec, false, 1_000);
    t.bury(id, { reported: true, record: rec, until: 3_000 });
    t.pruneTombstones(2_000);
    expect(t.tombstone(id)).toMatchObject({ reported: true, until: 3_000 });
    const record = { id: "L-other-1", key: "k2", model: "m2", scopes: ["key:k2", "model:m2"], heldMask: 0, probeMask: 0, estimate: { tokens: 5, cost: 0, requests: 1 }, expiresAt: 0 };
    t.bury("L-other-1", { reported: true, record, until: 2_500 });
    expect(t.tombstone("L-other-1")).toMatchObject({ reported: true, record: { key: "k2" } });
    expect(t.tombstones).toBe(2);
    t.pruneTombstones(2_500);
    expect(t.tombstone("L-other-1")).toBeUndefined();
    t.pruneTombstones(3_000);
    expect(t.tombstones).toBe(0);
  });

  it("never buries a live lease, and keeps at most maxTombstones of its own, dropping the oldest", () => {
    const t = table(3);
    const live = t.add(SCOPES, 0, 0, 1, 0, 100);
    t.bury(live, { reported: true, record: t.get(live)!, until: 50 });
    expect(t.get(live)).toBeDefined();
    const ids = Array.from({ length: 5 }, (_, i) => t.add(SCOPES, 0, 0, 1, 0, 200 + i));
    ids.forEach((id, i) => t.settle(t.get(id)!, true, 1_000 + i));
    expect(t.tombstones).toBe(3);
    expect(ids.map((id) => t.tombstone(id) !== undefined)).toEqual([false, false, true, true, true]);
  });

  it("grows past its first capacity and lists every live lease", () => {
    const t = table(100_000);
    const ids: string[] = [];
    for (let i = 0; i < 5_000; i++) ids.push(t.add(SCOPES, 0b1, 0, i, 0, 10_000 + i));
    for (let i = 0; i < 5_000; i += 2) t.settle(t.get(ids[i]!)!, true, 50_000);
    expect(t.size).toBe(2_500);
    const live = [...t.values()];
    expect(live.length).toBe(2_500);
    expect(live.every((r) => r.estimate.tokens % 2 === 1 && hasBit(r.heldMask, 0))).toBe(true);
    expect(t.get(ids[4_999]!)!.estimate.tokens).toBe(4_999);
  });

  it("checks its scope list and its bounds", () => {
    const t = table();
    expect(() => t.add(["model:m", "key:k"], 0, 0, 1, 0, 1)).toThrow(/key:… and model:… first/);
    expect(() => new LeaseTable({ prefix: "L-", maxLeases: 8_000_000, maxTombstones: 1_000_000 })).toThrow(/maxLeases \+ maxTombstones/);
  });
});
