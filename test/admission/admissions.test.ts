import { Admissions, CONCURRENCY_RETRY_HINT_MS } from "../../src/admission/Admissions.js";
import { ManualClock } from "../../src/clock.js";
import type { Decision } from "../../src/protocol/decision.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { admitRequestSchema } from "../../src/protocol/schemas.js";
import { ScopeRegistry } from "../../src/registry/ScopeRegistry.js";
import { describe, expect, it } from "vitest";
import { isSluiceRequestError } from "../../src/protocol/errors.js";
import { admitted, flush, rejected, sluice, track } from "./helpers.js";

const H = 3_600_000;
const D = 86_400_000;
/** 18:00 UTC: six hours before a calendar day ends. */
const EVENING = Date.UTC(2026, 0, 1, 18);

describe("admissions - rate limits", () => {
  it("admits the burst, then rejects rate_limited with the exact time the bucket refills", () => {
    const s = sluice({ scopes: { key: { default: { rpm: 60, burst: 3 } } } });
    for (let i = 0; i < 3; i++) admitted(s.admit({ key: "k", model: "m" }));

    const r = rejected(s.admit({ key: "k", model: "m" }));
    expect(r).toMatchObject({ reason: "rate_limited", scope: "key:k", retryAfterMs: 1_000 });
    expect(r.limits).toContainEqual(expect.objectContaining({ scope: "key:k", kind: "rpm", limit: 60, remaining: 0 }));

    s.clock.advance(500);
    expect(rejected(s.admit({ key: "k", model: "m" })).retryAfterMs).toBe(500);
    s.clock.advance(499);
    rejected(s.admit({ key: "k", model: "m" }));
    s.clock.advance(1);
    admitted(s.admit({ key: "k", model: "m" }));
    // One unit back, one unit taken.
    expect(rejected(s.admit({ key: "k", model: "m" })).retryAfterMs).toBe(1_000);
  });

  it("jitter spreads retryAfterMs within [min, max] of the exact wait", () => {
    const s = sluice({ jitter: { min: 1, max: 2 }, scopes: { key: { default: { rpm: 60, burst: 1 } } } }, { random: () => 0.5 });
    admitted(s.admit({ key: "k", model: "m" }));
    expect(rejected(s.admit({ key: "k", model: "m" })).retryAfterMs).toBe(1_500);
  });

  it("a request above the token bucket's burst is too_large, with no retryAfterMs", () => {
    const s = sluice({ scopes: { key: { default: { tpm: 6_000, tpmBurst: 1_000 } } } });
    const r = rejected(s.admit({ key: "k", model: "m", tokens: 1_001 }));
    expect(r.reason).toBe("too_large");
    expect(r.scope).toBe("key:k");
    expect(r).not.toHaveProperty("retryAfterMs");
    // The bucket was not touched; the largest request that fits still fits.
    admitted(s.admit({ key: "k", model: "m", tokens: 1_000 }));
  });

  it("the limits in a decision come tightest first", () => {
    const s = sluice({ scopes: { key: { default: { rpm: 10 } }, model: { default: { rpm: 100 } } } });
    for (let i = 0; i < 5; i++) admitted(s.admit({ key: "k", model: "m" }));
    const d = admitted(s.admit({ key: "k", model: "m" }));
    expect(d.limits.map((l) => [l.scope, l.remaining])).toEqual([
      ["key:k", 4],
      ["model:m", 94],
    ]);
  });

  it("limits: tightest sends only the first of the limits, none an empty array; the decision is the same", () => {
    const policy = { scopes: { key: { default: { rpm: 10, concurrency: 50 } }, model: { default: { rpm: 100 } }, team: { default: { rpm: 3 } } } };
    const all = sluice(policy);
    const trimmed = sluice(policy);
    for (let i = 0; i < 4; i++) {
      const full = all.admit({ key: "k", model: "m", scopes: { team: "t" } });
      const tightest = trimmed.admit({ key: "k", model: "m", scopes: { team: "t" }, limits: i % 2 === 0 ? "tightest" : "none" });
      const { limits, ...rest } = full;
      expect(tightest).toEqual({ ...rest, limits: i % 2 === 0 ? limits.slice(0, 1) : [] });
      if (i === 0) expect(limits[0]).toMatchObject({ scope: "team:t", kind: "rpm", remaining: 2 });
    }
    // Refused by the team: the reply names the team's rpm, the tightest.
    expect(rejected(trimmed.admit({ key: "k", model: "m", scopes: { team: "t" }, limits: "tightest" })).limits).toEqual([
      expect.objectContaining({ scope: "team:t", kind: "rpm", remaining: 0 }),
    ]);
  });

  it("a caller refused behind a waiter gets the limits it asked for", async () => {
    const s = sluice({ scopes: { key: { default: { rpm: 100 } }, model: { default: { concurrency: 1, rpm: 1000 } } } });
    const a = admitted(s.admit({ key: "acme", model: "m" }));
    const waiting = track(s.admitWaiting({ key: "initech", model: "m", waitMs: 5_000 }));
    const all = rejected(s.admit({ key: "globex", model: "m" }));
    expect(all.limits.length).toBeGreaterThan(1);
    expect(rejected(s.admit({ key: "globex", model: "m", limits: "tightest" })).limits).toEqual(all.limits.slice(0, 1));
    expect(rejected(s.admit({ key: "globex", model: "m", limits: "none" })).limits).toEqual([]);
    s.report({ lease: a.lease, outcome: "ok" });
    await flush();
    expect(waiting.value()).toMatchObject({ decision: "admit" });
  });
});

describe("admissions - concurrency", () => {
  const doc = { leaseTtlMs: 10_000, scopes: { key: { default: { concurrency: 2 } } } };

  it("N leases admitted, the N+1st rejected until a report frees a slot", () => {
    const s = sluice(doc);
    const a = admitted(s.admit({ key: "k", model: "m" }));
    s.clock.advance(3_000);
    admitted(s.admit({ key: "k", model: "m" }));
    const r = rejected(s.admit({ key: "k", model: "m" }));
    // The earliest lease expires 7 s from now, but slots usually free by report far sooner: the hint is capped.
    expect(r).toMatchObject({ reason: "concurrency", scope: "key:k", retryAfterMs: CONCURRENCY_RETRY_HINT_MS });
    expect(s.ctx("key:k").held).toBe(2);

    s.clock.advance(6_500);
    // Within the cap, the time to the first expiry.
    expect(rejected(s.admit({ key: "k", model: "m" })).retryAfterMs).toBe(500);
    expect(s.report({ lease: a.lease, outcome: "ok" })).toEqual({ ok: true, status: "applied" });
    expect(s.ctx("key:k").held).toBe(1);
    admitted(s.admit({ key: "k", model: "m" }));
    expect(s.ctx("key:k").held).toBe(2);
  });

  it("an expired lease frees its slot with no report", () => {
    const s = sluice(doc);
    admitted(s.admit({ key: "k", model: "m" }));
    admitted(s.admit({ key: "k", model: "m" }));
    rejected(s.admit({ key: "k", model: "m" }));
    s.clock.advance(9_999);
    expect(s.ctx("key:k").held).toBe(2);
    // The expiry timer fires on its own: the slots are free before anyone asks.
    s.clock.advance(1);
    expect(s.ctx("key:k").held).toBe(0);
    expect(s.admissions.leases.size).toBe(0);
    admitted(s.admit({ key: "k", model: "m" }));
  });

  it("with expiry slack, no decision sees an expired lease, a queued caller is served at the expiry, and the timer settles the rest late", () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const registry = new ScopeRegistry({ policy: parsePolicy(doc), clock });
    const admissions = new Admissions({ registry, clock, random: () => 0, expirySlackMs: 25 });
    const admit = (waitMs = 0) => admissions.admit(admitRequestSchema.parse({ key: "k", model: "m", waitMs }));
    const held = () => registry.context("key:k")!.held;
    admitted(admit() as Decision);
    admitted(admit() as Decision);
    clock.advance(10_000);
    // Past the expiry, within the slack: nothing settled them yet, but the next admission does first.
    expect(held()).toBe(2);
    admitted(admit() as Decision);
    expect(held()).toBe(1);
    // No traffic: the timer settles the expired lease 25 ms late.
    admitted(admit() as Decision);
    clock.advance(10_000 + 24);
    expect(held()).toBe(2);
    clock.advance(1);
    expect(held()).toBe(0);
    // A caller queued for a slot gets it at the expiry itself, not the slack later.
    admitted(admit() as Decision);
    admitted(admit() as Decision);
    clock.advance(5_000);
    const waiting = admit(10_000);
    expect(waiting).toBeInstanceOf(Promise);
    let got: Decision | undefined;
    void (waiting as Promise<Decision>).then((d) => (got = d));
    clock.advance(4_999);
    return Promise.resolve().then(() => {
      expect(got).toBeUndefined();
      clock.advance(1);
      return Promise.resolve().then(() => Promise.resolve()).then(() => admitted(got!));
    });
  });

  it("concurrency 0 never admits and never says when to retry", () => {
    const s = sluice({ scopes: { key: { overrides: { blocked: { concurrency: 0 } } } } });
    const r = rejected(s.admit({ key: "blocked", model: "m" }));
    expect(r.reason).toBe("concurrency");
    expect(r).not.toHaveProperty("retryAfterMs");
  });
});

describe("admissions - all or nothing", () => {
  it("a key with room, a full model: rejected by the model, the key left exactly as it was", () => {
    const s = sluice({
      scopes: {
        key: { default: { rpm: 100, tpm: 100_000, concurrency: 10, budget: { limit: 100 } } },
        model: { default: { concurrency: 1 } },
      },
    });
    admitted(s.admit({ key: "other", model: "m", tokens: 10 }));
    admitted(s.admit({ key: "k", model: "n", tokens: 500, cost: 1 }));
    const before = structuredClone(s.ctx("key:k"));

    s.clock.advance(250);
    const r = rejected(s.admit({ key: "k", model: "m", tokens: 500, cost: 1 }));
    expect(r).toMatchObject({ reason: "concurrency", scope: "model:m" });

    const after = s.ctx("key:k");
    expect(after).toEqual(before);
    expect(after.buckets.rpm).toEqual(before.buckets.rpm);
    expect(after.buckets.tpm).toEqual(before.buckets.tpm);
    expect(after.held).toBe(1);
    expect(after.budgets[0]).toMatchObject({ used: 0, reserved: 1 });
    expect(s.admissions.leases.size).toBe(2);
  });
});

describe("admissions - idempotency", () => {
  it("the same id gets the same decision and counts once", () => {
    const s = sluice({ scopes: { key: { default: { rpm: 10, concurrency: 5 } } } });
    const first = admitted(s.admit({ key: "k", model: "m", id: "req-1" }));
    s.clock.advance(100);
    const again = s.admit({ key: "k", model: "m", id: "req-1" });
    // Equal, field for field, and a value of its own (kept packed, built anew for each repeat).
    expect(again).toStrictEqual(first);
    expect(again).not.toBe(first);
    expect(JSON.stringify(again)).toBe(JSON.stringify(first));
    // One unit taken, at the first call; the repeat sent nothing to the actor.
    expect(s.ctx("key:k").buckets.rpm).toEqual({ level: 9, at: s.clock.now() - 100 });
    expect(s.ctx("key:k").held).toBe(1);
    expect(s.admissions.leases.size).toBe(1);
    // Another caller's same id is another request.
    expect(admitted(s.admit({ key: "k2", model: "m", id: "req-1" })).lease).not.toBe(first.lease);
  });

  it("a rejection is repeated for the same id only while it would be the same anyway", () => {
    const s = sluice({ scopes: { key: { default: { rpm: 60, burst: 1 } } } });
    admitted(s.admit({ key: "k", model: "m" }));
    const r = rejected(s.admit({ key: "k", model: "m", id: "x" }));
    s.clock.advance(500);
    expect(s.admit({ key: "k", model: "m", id: "x" })).toStrictEqual(r);
    s.clock.advance(500);
    admitted(s.admit({ key: "k", model: "m", id: "x" }));
  });

  it("a waiting caller's id repeats its promise, then the decision it came to", async () => {
    const s = sluice({ scopes: { key: { default: { concurrency: 1, budget: { limit: 10, unit: "tokens" } } } } });
    const holder = admitted(s.admit({ key: "k", model: "m" }));
    const waiting = s.admitWaiting({ key: "k", model: "m", tokens: 2, waitMs: 5_000, id: "w" });
    expect(s.admitWaiting({ key: "k", model: "m", tokens: 2, waitMs: 5_000, id: "w" })).toBe(waiting);
    s.report({ lease: holder.lease, outcome: "ok" });
    const decided = await waiting;
    expect(decided).toMatchObject({ decision: "admit", limits: expect.arrayContaining([expect.objectContaining({ kind: "budget", unit: "tokens" })]) });
    await flush();
    const again = s.admit({ key: "k", model: "m", tokens: 2, waitMs: 5_000, id: "w" });
    expect(again).toStrictEqual(decided);
    expect(s.admissions.leases.size).toBe(1);
  });
});

describe("admissions - reports", () => {
  const doc = {
    leaseTtlMs: 10_000,
    scopes: {
      key: { default: { tpm: 100_000, concurrency: 4, budget: { limit: 100 } } },
      model: { default: { budget: { limit: 1_000 } } },
    },
  };

  it("a report settles the estimate to the actual usage, once however often it is sent", () => {
    const s = sluice(doc);
    const a = admitted(s.admit({ key: "k", model: "m", tokens: 1_000, cost: 1 }));
    expect(s.ctx("key:k").budgets[0]).toMatchObject({ used: 0, reserved: 1 });

    expect(s.report({ lease: a.lease, outcome: "ok", tokens: 1_500, cost: 2.5 })).toEqual({ ok: true, status: "applied" });
    const settled = structuredClone(s.ctx("key:k"));
    expect(settled.budgets[0]).toMatchObject({ used: 2.5, reserved: 0 });
    expect(settled.buckets.tpm!.level).toBe(100_000 - 1_500);
    expect(s.ctx("model:m").budgets[0]).toMatchObject({ used: 2.5, reserved: 0 });

    expect(s.report({ lease: a.lease, outcome: "ok", tokens: 1_500, cost: 2.5 })).toEqual({ ok: true, status: "duplicate" });
    expect(s.report({ lease: a.lease, outcome: "error", cost: 50 })).toEqual({ ok: true, status: "duplicate" });
    expect(s.ctx("key:k")).toEqual(settled);
    expect(s.ctx("model:m").budgets[0]!.used).toBe(2.5);
  });

  it("a report without tokens or cost settles at the estimate", () => {
    const s = sluice(doc);
    const a = admitted(s.admit({ key: "k", model: "m", tokens: 1_000, cost: 1 }));
    s.report({ lease: a.lease, outcome: "cancelled" });
    expect(s.ctx("key:k").budgets[0]).toMatchObject({ used: 1, reserved: 0 });
    expect(s.ctx("key:k").buckets.tpm!.level).toBe(99_000);
  });

  it("a report for an unknown lease is an orphan: its usage still counts against key and model", () => {
    const s = sluice(doc);
    expect(s.report({ lease: "L-unknown", key: "k", model: "m", outcome: "ok", tokens: 300, cost: 4 })).toEqual({
      ok: true,
      status: "orphan",
    });
    expect(s.ctx("key:k").budgets[0]).toMatchObject({ used: 4, reserved: 0 });
    expect(s.ctx("model:m").budgets[0]).toMatchObject({ used: 4, reserved: 0 });
    expect(s.ctx("key:k").buckets.tpm!.level).toBe(100_000 - 300);
    expect(s.ctx("key:k").held).toBe(0);
    // Sent again, it counts once.
    expect(s.report({ lease: "L-unknown", key: "k", model: "m", outcome: "ok", tokens: 300, cost: 4 }).status).toBe("duplicate");
    expect(s.ctx("key:k").budgets[0]!.used).toBe(4);
  });

  it("a report naming neither a known lease nor key and model is a bad request", () => {
    const s = sluice(doc);
    let err: unknown;
    try {
      s.report({ lease: "L-unknown", outcome: "ok", cost: 1 });
    } catch (e) {
      err = e;
    }
    expect(isSluiceRequestError(err) && err.code).toBe("bad_request");
  });

  it("a report for another key's lease is refused and changes nothing", () => {
    const s = sluice(doc);
    const a = admitted(s.admit({ key: "k", model: "m", cost: 1 }));
    expect(() => s.report({ lease: a.lease, key: "thief", outcome: "ok", cost: 0 })).toThrow(/another key/);
    expect(s.ctx("key:k").budgets[0]).toMatchObject({ used: 0, reserved: 1 });
    expect(s.ctx("key:k").held).toBe(1);
  });

  it("a report after the lease expired is late: only the difference to the estimate is applied", () => {
    const s = sluice(doc);
    const a = admitted(s.admit({ key: "k", model: "m", tokens: 1_000, cost: 1 }));
    s.clock.advance(10_000);
    // Expired: settled at its estimate, the slot freed.
    expect(s.ctx("key:k")).toMatchObject({ held: 0, budgets: [{ used: 1, reserved: 0 }] });

    s.clock.advance(5_000);
    expect(s.report({ lease: a.lease, outcome: "ok", tokens: 1_200, cost: 1.75 })).toEqual({ ok: true, status: "late" });
    expect(s.ctx("key:k").budgets[0]).toMatchObject({ used: 1.75, reserved: 0 });
    expect(s.ctx("model:m").budgets[0]).toMatchObject({ used: 1.75, reserved: 0 });
    expect(s.ctx("key:k").held).toBe(0);
    // And a late report counts once too.
    expect(s.report({ lease: a.lease, outcome: "ok", tokens: 1_200, cost: 1.75 }).status).toBe("duplicate");
    expect(s.ctx("key:k").budgets[0]!.used).toBe(1.75);
  });

  it("a late report under the estimate gives the difference back", () => {
    const s = sluice(doc);
    const a = admitted(s.admit({ key: "k", model: "m", cost: 3 }));
    s.clock.advance(12_000);
    expect(s.report({ lease: a.lease, outcome: "ok", cost: 0.5 }).status).toBe("late");
    expect(s.ctx("key:k").budgets[0]!.used).toBe(0.5);
  });
});

describe("admissions - hierarchy", () => {
  const doc = {
    scopes: {
      key: {
        default: { rpm: 100, budget: { limit: 50 } },
        overrides: { alice: { parents: { team: "search" } } },
      },
      team: { default: { budget: { limit: 5 } } },
    },
  };

  it("a key counts against its team; the team's exhausted budget refuses the key, whose own counters stay put", () => {
    const s = sluice(doc);
    const a = admitted(s.admit({ key: "alice", model: "m", cost: 2 }));
    s.report({ lease: a.lease, outcome: "ok", cost: 5 });
    expect(s.ctx("team:search").budgets[0]).toMatchObject({ used: 5, reserved: 0 });
    expect(s.ctx("key:alice").budgets[0]).toMatchObject({ used: 5, reserved: 0 });
    const before = structuredClone(s.ctx("key:alice"));

    const r = rejected(s.admit({ key: "alice", model: "m", cost: 1 }));
    expect(r).toMatchObject({ reason: "budget_exhausted", scope: "team:search" });
    // The team's budget never resets: no time to come back at.
    expect(r).not.toHaveProperty("retryAfterMs");
    expect(s.ctx("key:alice")).toEqual(before);

    // A key outside the team is not held back.
    admitted(s.admit({ key: "bob", model: "m", cost: 1 }));
    expect(s.registry.peek("team:search")!.getSnapshot().context.budgets[0]!.reserved).toBe(0);
  });

  it("an orphan report of a key counts against its parents too", () => {
    const s = sluice(doc);
    expect(s.report({ key: "alice", model: "m", outcome: "ok", cost: 3 }).status).toBe("orphan");
    expect(s.ctx("team:search").budgets[0]!.used).toBe(3);
  });
});

describe("admissions - budgets", () => {
  const doc = { scopes: { key: { default: { budget: { limit: 10, period: "day", calendar: true } } } } };

  it("reserve on admit, settle to the actual cost on report", () => {
    const s = sluice(doc, { start: EVENING });
    const a = admitted(s.admit({ key: "k", model: "m", cost: 4 }));
    expect(s.ctx("key:k").budgets[0]).toMatchObject({ used: 0, reserved: 4 });
    expect(a.limits).toContainEqual({ scope: "key:k", kind: "budget", unit: "cost", limit: 10, remaining: 6, resetMs: 6 * H });
    s.report({ lease: a.lease, outcome: "ok", cost: 6 });
    expect(s.ctx("key:k").budgets[0]).toMatchObject({ used: 6, reserved: 0 });
  });

  it("an estimate that would cross the limit is refused; exactly reaching it is not", () => {
    const s = sluice(doc, { start: EVENING });
    s.report({ key: "k", model: "m", outcome: "ok", cost: 6 });
    expect(rejected(s.admit({ key: "k", model: "m", cost: 4.5 }))).toMatchObject({ reason: "budget_exhausted", scope: "key:k" });
    admitted(s.admit({ key: "k", model: "m", cost: 4 }));
  });

  it("budget_exhausted says to come back at the reset; the reset comes at midnight UTC", () => {
    const s = sluice(doc, { start: EVENING });
    const a = admitted(s.admit({ key: "k", model: "m", cost: 10 }));
    s.report({ lease: a.lease, outcome: "ok", cost: 10 });

    const r = rejected(s.admit({ key: "k", model: "m", cost: 0 }));
    expect(r).toMatchObject({ reason: "budget_exhausted", scope: "key:k", retryAfterMs: 6 * H });
    s.clock.advance(6 * H - 1);
    expect(rejected(s.admit({ key: "k", model: "m", cost: 0.01 })).retryAfterMs).toBe(1);

    s.clock.advance(1);
    admitted(s.admit({ key: "k", model: "m", cost: 10 }));
    const midnight = Date.UTC(2026, 0, 2);
    expect(s.ctx("key:k").budgets[0]).toEqual({ used: 0, reserved: 10, periodStart: midnight, resetAt: midnight + D });
  });

  it("a budget of requests counts admissions", () => {
    const s = sluice({ scopes: { job: { default: { budget: { limit: 2, unit: "requests" } } } } });
    admitted(s.admit({ key: "k", model: "m", scopes: { job: "j1" } }));
    admitted(s.admit({ key: "k", model: "m", scopes: { job: "j1" } }));
    expect(rejected(s.admit({ key: "k", model: "m", scopes: { job: "j1" } }))).toMatchObject({
      reason: "budget_exhausted",
      scope: "job:j1",
    });
    admitted(s.admit({ key: "k", model: "m", scopes: { job: "j2" } }));
  });
});

describe("admissions - waiting in the queue", () => {
  it("a caller with waitMs on a full bucket is admitted once the bucket refills", async () => {
    const s = sluice({ scopes: { key: { default: { rpm: 60, burst: 1 } } } });
    admitted(s.admit({ key: "k", model: "m" }));
    const p = track(s.admitWaiting({ key: "k", model: "m", waitMs: 5_000 }));
    expect(s.admissions.waiting).toBe(1);

    s.clock.advance(999);
    await flush();
    expect(p.settled()).toBe(false);

    s.clock.advance(1);
    await flush();
    expect(p.settled()).toBe(true);
    expect(p.value()).toMatchObject({ decision: "admit", delayMs: 0 });
    expect(s.admissions.waiting).toBe(0);
  });

  it("a caller whose wait could never be long enough is refused at once", () => {
    const s = sluice({ scopes: { key: { default: { rpm: 1 } } } });
    admitted(s.admit({ key: "k", model: "m" }));
    expect(rejected(s.admit({ key: "k", model: "m", waitMs: 5_000 }))).toMatchObject({ reason: "rate_limited", retryAfterMs: 60_000 });
  });

  it("waiters are served in arrival order, even when a later one would fit sooner", async () => {
    // 100 tokens a second; 100 left after the first call.
    const s = sluice({ scopes: { key: { default: { tpm: 6_000, tpmBurst: 1_000 } } } });
    admitted(s.admit({ key: "k", model: "m", tokens: 900 }));
    const order: string[] = [];
    const big = s.admitWaiting({ key: "k", model: "m", tokens: 500, waitMs: 10_000 }).then((d) => (order.push("big"), d));
    const small = s.admitWaiting({ key: "k", model: "m", tokens: 50, waitMs: 10_000 }).then((d) => (order.push("small"), d));

    // The small one fits now, but waits behind the big one: 400 more tokens take 4 s.
    s.clock.advance(3_999);
    await flush();
    expect(order).toEqual([]);
    s.clock.advance(1);
    await flush();
    expect(order).toEqual(["big"]);
    // The big one emptied the bucket; 50 tokens take half a second.
    s.clock.advance(499);
    await flush();
    expect(order).toEqual(["big"]);
    s.clock.advance(1);
    await flush();
    expect(order).toEqual(["big", "small"]);
    expect((await big).decision).toBe("admit");
    expect((await small).decision).toBe("admit");
  });

  it("a caller with waitMs 0 does not jump the queue", async () => {
    const s = sluice({ scopes: { key: { default: { tpm: 6_000, tpmBurst: 1_000 } } } });
    admitted(s.admit({ key: "k", model: "m", tokens: 900 }));
    const waiting = track(s.admitWaiting({ key: "k", model: "m", tokens: 500, waitMs: 10_000 }));
    const level = s.ctx("key:k").buckets.tpm!.level;

    // 50 tokens would fit in the bucket, but someone is queued on key:k.
    const r = rejected(s.admit({ key: "k", model: "m", tokens: 50 }));
    expect(r.reason).toBe("rate_limited");
    expect(r.scope).toBe("key:k");
    expect(s.ctx("key:k").buckets.tpm!.level).toBe(level);
    // A caller on other scopes is not held up.
    admitted(s.admit({ key: "k2", model: "m", tokens: 50 }));

    s.clock.advance(4_000);
    await flush();
    expect(waiting.value()).toMatchObject({ decision: "admit" });
  });

  it("a caller waiting for its own key holds back nobody else on the same model", async () => {
    const s = sluice({ scopes: { key: { default: { rpm: 60, burst: 1 } }, model: { default: { rpm: 600 } } } });
    admitted(s.admit({ key: "acme", model: "m" }));
    const waiting = track(s.admitWaiting({ key: "acme", model: "m", waitMs: 5_000 }));
    // Another tenant on the same model: its key has room, the model has room.
    const d = admitted(s.admit({ key: "globex", model: "m" }));
    expect(d.limits.every((l) => l.scope !== "key:acme")).toBe(true);
    s.clock.advance(1_000);
    await flush();
    expect(waiting.value()).toMatchObject({ decision: "admit" });
  });

  it("a queue on the model itself is kept by every key, and the refusal names only the caller's own scopes", async () => {
    const s = sluice({ scopes: { key: { default: { rpm: 100 } }, model: { default: { concurrency: 1 } } } });
    const a = admitted(s.admit({ key: "acme", model: "m" }));
    const waiting = track(s.admitWaiting({ key: "initech", model: "m", waitMs: 5_000 }));
    const r = rejected(s.admit({ key: "globex", model: "m" }));
    expect(r).toMatchObject({ reason: "concurrency", scope: "model:m" });
    expect(r.limits.map((l) => l.scope).every((scope) => scope === "model:m" || scope === "key:globex")).toBe(true);
    s.report({ lease: a.lease, outcome: "ok" });
    await flush();
    expect(waiting.value()).toMatchObject({ decision: "admit" });
  });

  it("a waiter whose wait runs out gets a reject at its deadline", async () => {
    const s = sluice({ leaseTtlMs: 60_000, scopes: { key: { default: { concurrency: 1 } } } });
    admitted(s.admit({ key: "k", model: "m" }));
    const waiting = track(s.admitWaiting({ key: "k", model: "m", waitMs: 5_000 }));

    s.clock.advance(4_999);
    await flush();
    expect(waiting.settled()).toBe(false);
    s.clock.advance(1);
    await flush();
    expect(waiting.value()).toMatchObject({ decision: "reject", reason: "concurrency", scope: "key:k" });
    expect(s.admissions.waiting).toBe(0);

    // The lease expiring later does not admit a caller that has gone.
    s.clock.advance(60_000);
    await flush();
    expect(s.ctx("key:k").held).toBe(0);
  });

  it("a waiter queued behind another gets a reject when its own wait runs out", async () => {
    const s = sluice({ scopes: { key: { default: { rpm: 60, burst: 1 } } } });
    admitted(s.admit({ key: "k", model: "m" }));
    const first = track(s.admitWaiting({ key: "k", model: "m", waitMs: 5_000 }));
    const second = track(s.admitWaiting({ key: "k", model: "m", waitMs: 300 }));
    s.clock.advance(300);
    await flush();
    expect(second.value()).toMatchObject({ decision: "reject", reason: "rate_limited" });
    expect(first.settled()).toBe(false);
    s.clock.advance(700);
    await flush();
    expect(first.value()).toMatchObject({ decision: "admit" });
  });

  it("a report that frees a slot admits the waiter at once", async () => {
    const s = sluice({ scopes: { key: { default: { concurrency: 1 } } } });
    const a = admitted(s.admit({ key: "k", model: "m" }));
    const waiting = track(s.admitWaiting({ key: "k", model: "m", waitMs: 5_000 }));
    s.clock.advance(100);
    s.report({ lease: a.lease, outcome: "ok" });
    await flush();
    expect(waiting.value()).toMatchObject({ decision: "admit" });
    expect(s.ctx("key:k").held).toBe(1);
  });
});

describe("admissions - policy change at run time", () => {
  it("limits change at once; usage is kept", () => {
    const doc = (rpm: number, limit: number) => ({ scopes: { key: { default: { rpm, budget: { limit } } } } });
    const s = sluice(doc(2, 10));
    admitted(s.admit({ key: "k", model: "m", cost: 2 }));
    admitted(s.admit({ key: "k", model: "m", cost: 3 }));
    rejected(s.admit({ key: "k", model: "m" }));

    s.setPolicy(doc(600, 6));
    // The bucket was empty and stays empty, but refills at 10 a second now.
    expect(rejected(s.admit({ key: "k", model: "m" }))).toMatchObject({ reason: "rate_limited", retryAfterMs: 100 });
    s.clock.advance(100);
    // 5 of the new 6 reserved: 1 fits, more does not.
    expect(s.ctx("key:k").budgets[0]).toMatchObject({ used: 0, reserved: 5 });
    expect(rejected(s.admit({ key: "k", model: "m", cost: 1.5 }))).toMatchObject({ reason: "budget_exhausted" });
    admitted(s.admit({ key: "k", model: "m", cost: 1 }));
  });

  it("a raised concurrency limit lets a waiter in", async () => {
    const s = sluice({ scopes: { key: { default: { concurrency: 1 } } } });
    admitted(s.admit({ key: "k", model: "m" }));
    const waiting = track(s.admitWaiting({ key: "k", model: "m", waitMs: 5_000 }));
    s.setPolicy({ scopes: { key: { default: { concurrency: 2 } } } });
    await flush();
    expect(waiting.value()).toMatchObject({ decision: "admit" });
    expect(s.ctx("key:k").held).toBe(2);
  });
});

describe("admissions - several budgets on one scope", () => {
  // Tokens per calendar day and requests per rolling hour: each counts and resets on its own.
  const doc = {
    scopes: {
      key: {
        default: {
          budget: [
            { limit: 10_000, unit: "tokens", period: "day", calendar: true },
            { limit: 3, unit: "requests", periodMs: 3_600_000 },
          ],
        },
      },
    },
  };

  it("token and request counters of one scope reset independently", () => {
    const s = sluice(doc, { start: EVENING });
    for (let i = 0; i < 3; i++) {
      const a = admitted(s.admit({ key: "k", model: "m", tokens: 1_000 }));
      s.report({ lease: a.lease, outcome: "ok", tokens: 1_000 });
    }
    const r = rejected(s.admit({ key: "k", model: "m", tokens: 1_000 }));
    // The hourly request budget refuses, until its own reset.
    expect(r).toMatchObject({ reason: "budget_exhausted", scope: "key:k", retryAfterMs: 3_600_000 });
    expect(r.limits.filter((l) => l.kind === "budget").map((l) => l.unit).sort()).toEqual(["requests", "tokens"]);

    s.clock.advance(3_600_000);
    admitted(s.admit({ key: "k", model: "m", tokens: 1_000 }));
    const [tokens, requests] = s.ctx("key:k").budgets;
    // The request counter started over; the token counter kept the day's usage.
    expect(requests).toMatchObject({ used: 0, reserved: 1 });
    expect(tokens).toMatchObject({ used: 3_000, reserved: 1_000 });
  });
});

describe("admissions - an unexpected failure of one admission", () => {
  it("is that admission's `internal` error alone: the others of the turn keep their decisions and their counts", () => {
    const clock = new ManualClock(EVENING);
    const registry = new ScopeRegistry({ policy: parsePolicy({ scopes: { key: { default: { rpm: 60, burst: 5 } } } }), clock });
    const get = registry.get.bind(registry);
    // A bug reached only by one scope.
    registry.get = (scope, restore) => {
      if (scope === "key:boom") throw new TypeError("boom");
      return get(scope, restore);
    };
    const admissions = new Admissions({ registry, clock });
    const req = (key: string) => admitRequestSchema.parse({ key, model: "m" });
    const [a, boom, b] = admissions.admitMany([req("a"), req("boom"), req("a")]);
    expect(a).toMatchObject({ decision: "admit" });
    expect(b).toMatchObject({ decision: "admit" });
    expect(isSluiceRequestError(boom) && [boom.code, (boom.cause as Error).message]).toEqual(["internal", "boom"]);
    expect(registry.context("key:a")!.buckets.rpm!.level).toBe(3);
    expect(admissions.leases.size).toBe(2);
    admissions.close();
  });
});
