import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { decodeSubjectToken, encodeSubjectToken } from "../../src/protocol/subjectToken.js";
import { SluiceService } from "../../src/service/SluiceService.js";
import { useNatsServer } from "../helpers/natsFixture.js";

const POLICY = {
  leaseTtlMs: 10_000,
  scopes: {
    key: { default: { rpm: 3, concurrency: 2 }, overrides: { vip: { rpm: 100, parents: { team: "search" } } } },
    model: { default: { rpm: 1000 } },
    team: { default: { budget: { limit: 1, period: "day", calendar: true } } },
  },
};

const nats = useNatsServer();
let service: SluiceService | undefined;
let clock: ManualClock;
let prefix = "";
let seq = 0;

afterEach(async () => {
  await service?.stop();
  service = undefined;
});

async function start(policy: unknown = POLICY) {
  clock = new ManualClock(Date.UTC(2026, 10, 23, 12));
  prefix = `t${++seq}`;
  service = await SluiceService.start({ nc: nats.nc, policy: parsePolicy(policy), prefix, clock, random: () => 0 });
  return service;
}

async function req(subject: string, body: unknown): Promise<{ body: any; code?: string; error?: string }> {
  const payload = typeof body === "string" ? body : JSON.stringify(body);
  const r = await nats.nc.request(`${prefix}.${subject}`, payload, { timeout: 2000 });
  return { body: r.json(), code: r.headers?.get("Nats-Service-Error-Code") || undefined, error: r.headers?.get("Nats-Service-Error") || undefined };
}

function collect(subject: string): { messages: { subject: string; body: any }[]; stop: () => void } {
  const messages: { subject: string; body: any }[] = [];
  const sub = nats.nc.subscribe(subject, { callback: (_e, m) => void messages.push({ subject: m.subject, body: m.json() }) });
  return { messages, stop: () => sub.unsubscribe() };
}

describe("service - admissions over NATS", () => {
  it("admits within the key's rpm, then refuses with an exact retry time and the refusing scope", async () => {
    await start();
    for (let i = 0; i < 3; i++) {
      const d = (await req("admit", { key: "k1", model: "m" })).body;
      expect(d).toMatchObject({ decision: "admit", reason: "ok", delayMs: 0 });
      expect((await req("report", { lease: d.lease, outcome: "ok" })).body).toEqual({ ok: true, status: "applied" });
    }
    const r = (await req("admit", { key: "k1", model: "m" })).body;
    // rpm 3 refills one request every 20 s; with jitter drawn at its floor (×1) the retry time is exact.
    expect(r).toMatchObject({ decision: "reject", reason: "rate_limited", scope: "key:k1", retryAfterMs: 20_000 });
    expect(r.limits[0]).toMatchObject({ scope: "key:k1", kind: "rpm", limit: 3, remaining: 0 });
    clock.advance(20_000);
    expect((await req("admit", { key: "k1", model: "m" })).body.decision).toBe("admit");
  });

  it("sends as many of a decision's limits as the request asks for, in a single admission and in a batch", async () => {
    await start();
    const all = (await req("admit", { key: "k9", model: "m" })).body;
    expect(all.limits.length).toBe(3);
    await req("report", { lease: all.lease, outcome: "ok" });
    const tightest = (await req("admit", { key: "k9", model: "m", limits: "tightest" })).body;
    expect(tightest).toMatchObject({ decision: "admit", limits: [{ scope: "key:k9", kind: "rpm", remaining: 1 }] });
    await req("report", { lease: tightest.lease, outcome: "ok" });
    const batch = (await req("admit.batch", [{ key: "k9", model: "m", limits: "none" }, { key: "k9", model: "m", limits: "tightest" }])).body;
    expect(batch[0]).toMatchObject({ decision: "admit", limits: [] });
    expect(batch[1]).toMatchObject({ decision: "reject", scope: "key:k9", limits: [{ scope: "key:k9", kind: "rpm", remaining: 0 }] });
  });

  it("publishes every decision on decisions.<decision>.<model> with the model name encoded", async () => {
    await start();
    const events = collect(`${prefix}.decisions.>`);
    await nats.nc.flush();
    const model = "gpt-4.1 mini*";
    await req("admit", { key: "k2", model, tokens: 5 });
    await nats.nc.flush();
    await new Promise((r) => setTimeout(r, 50));
    events.stop();
    expect(events.messages).toHaveLength(1);
    const [ev] = events.messages;
    expect(ev!.subject).toBe(`${prefix}.decisions.admit.${encodeSubjectToken(model)}`);
    expect(decodeSubjectToken(ev!.subject.split(".").pop()!)).toBe(model);
    expect(ev!.body).toMatchObject({ key: "k2", model, tokens: 5, decision: "admit", reason: "ok" });
    expect(ev!.body.ts).toBe(clock.now());
  });

  it("a report frees the concurrency slot and is applied once", async () => {
    await start({ scopes: { key: { default: { concurrency: 1 } } } });
    const first = (await req("admit", { key: "k", model: "m" })).body;
    expect((await req("admit", { key: "k", model: "m" })).body).toMatchObject({ decision: "reject", reason: "concurrency", scope: "key:k" });
    expect((await req("report", { lease: first.lease, outcome: "ok" })).body).toEqual({ ok: true, status: "applied" });
    expect((await req("report", { lease: first.lease, outcome: "ok" })).body).toEqual({ ok: true, status: "duplicate" });
    expect((await req("admit", { key: "k", model: "m" })).body.decision).toBe("admit");
  });

  it("a lease that is never reported frees its slot when it expires", async () => {
    await start({ leaseTtlMs: 1000, scopes: { key: { default: { concurrency: 1 } } } });
    await req("admit", { key: "k", model: "m" });
    expect((await req("admit", { key: "k", model: "m" })).body.reason).toBe("concurrency");
    clock.advance(1000);
    expect((await req("admit", { key: "k", model: "m" })).body.decision).toBe("admit");
  });

  it("a lease that expires unreported is settled at its estimate and marked unreported in inspect", async () => {
    await start({ leaseTtlMs: 1000, scopes: { key: { default: { budget: { limit: 10 } } } } });
    await req("admit", { key: "k", model: "m", cost: 1.5 });
    expect((await req("inspect", { scope: "key:k" })).body.view.budget).toMatchObject({ used: 0, reserved: 1.5, unreported: 0 });
    clock.advance(1000);
    expect((await req("inspect", { scope: "key:k" })).body.view.budget).toMatchObject({ used: 1.5, reserved: 0, unreported: 1 });
  });

  it("a report published without reply subject is applied too", async () => {
    await start({ scopes: { key: { default: { budget: { limit: 10 } } } } });
    const d = (await req("admit", { key: "k", model: "m", cost: 1 })).body;
    nats.nc.publish(`${prefix}.report`, JSON.stringify({ lease: d.lease, outcome: "ok", cost: 2.5 }));
    await nats.nc.flush();
    await new Promise((r) => setTimeout(r, 50));
    const view = (await req("inspect", { scope: "key:k" })).body.view;
    expect(view.budget).toMatchObject({ used: 2.5, reserved: 0 });
  });

  it("admit.batch answers in request order, with per-item errors in place", async () => {
    await start();
    const r = (await req("admit.batch", [{ key: "a", model: "m" }, { key: "", model: "m" }, { key: "b", model: "m", tokens: 3 }])).body;
    expect(r).toHaveLength(3);
    expect(r[0].decision).toBe("admit");
    expect(r[1].error).toMatchObject({ code: "bad_request" });
    expect(r[1].error.message).toMatch(/^\[1\]\.key:/);
    expect(r[2].decision).toBe("admit");
    expect((await req("admit.batch", { key: "a" })).code).toBe("400");
  });

  it("the same id gets the same decision and counts once", async () => {
    await start();
    const one = (await req("admit", { key: "k", model: "m", id: "x-1" })).body;
    const two = (await req("admit", { key: "k", model: "m", id: "x-1" })).body;
    expect(two).toEqual(one);
    const view = (await req("inspect", { scope: "key:k" })).body.view;
    expect(view.buckets.rpm.remaining).toBe(2);
    expect(view.concurrency.held).toBe(1);
  });

  it("waitMs holds the reply until the bucket refills", async () => {
    await start({ scopes: { key: { default: { rpm: 1 } } } });
    expect((await req("admit", { key: "k", model: "m" })).body.decision).toBe("admit");
    const pending = req("admit", { key: "k", model: "m", waitMs: 120_000 });
    await new Promise((r) => setTimeout(r, 50));
    clock.advance(60_000);
    expect((await pending).body.decision).toBe("admit");
  });

  it("parents declared in the policy count every admission of the key against its team", async () => {
    await start();
    const d = (await req("admit", { key: "vip", model: "m", cost: 0.6 })).body;
    expect(d.decision).toBe("admit");
    expect(d.limits.map((l: any) => l.scope)).toContain("team:search");
    const r = (await req("admit", { key: "vip", model: "m", cost: 0.6 })).body;
    expect(r).toMatchObject({ decision: "reject", reason: "budget_exhausted", scope: "team:search" });
    expect(r.retryAfterMs).toBe(Date.UTC(2026, 10, 24) - clock.now());
  });
});

describe("service - inspect and admin", () => {
  it("inspects a live scope, a scope with no actor, and lists by prefix", async () => {
    await start();
    await req("admit", { key: "k", model: "m" });
    const live = (await req("inspect", { scope: "key:k" })).body;
    expect(live).toMatchObject({ scope: "key:k", live: true, state: "closed", policy: { rpm: 3, concurrency: 2 } });
    expect(live.context.held).toBe(1);
    expect((await req("inspect", { scope: "key:nobody" })).body).toMatchObject({ scope: "key:nobody", live: false });
    expect((await req("inspect", { list: "key:" })).body).toEqual({ scopes: [{ scope: "key:k", state: "closed" }], truncated: false });
    expect((await req("inspect", { list: "" })).body.scopes.map((s: any) => s.scope)).toEqual(["key:k", "model:m"]);
  });

  it("policy.set swaps limits at once and keeps usage; an invalid document is refused naming the field", async () => {
    await start({ scopes: { key: { default: { budget: { limit: 10 } } } } });
    const d = (await req("admit", { key: "k", model: "m", cost: 4 })).body;
    await req("report", { lease: d.lease, outcome: "ok", cost: 5 });
    const bad = await req("admin.policy.set", { scopes: { key: { default: { budget: { limit: "lots" } } } } });
    expect(bad.code).toBe("400");
    expect(bad.body.error.message).toMatch(/scopes\.key\.default\.budget\.limit/);
    expect((await req("admin.policy.get", {})).body.scopes.key.default.budget.limit).toBe(10);
    expect((await req("admin.policy.set", { scopes: { key: { default: { budget: { limit: 6 } } } } })).body).toEqual({ ok: true });
    const view = (await req("inspect", { scope: "key:k" })).body.view;
    expect(view.budget).toMatchObject({ used: 5, limit: 6, remaining: 1 });
    expect((await req("admit", { key: "k", model: "m", cost: 2 })).body.reason).toBe("budget_exhausted");
  });

  it("admin.reset zeroes usage of a scope", async () => {
    await start();
    for (let i = 0; i < 3; i++) await req("admit", { key: "k", model: "m" });
    expect((await req("admin.reset", { scope: "key:k", what: "usage" })).body).toEqual({ ok: true });
    expect((await req("inspect", { scope: "key:k" })).body.view.buckets.rpm.remaining).toBe(3);
    expect((await req("admin.reset", { scope: "nonsense" })).code).toBe("400");
  });

  it("answers NATS micro PING, INFO and STATS with per-endpoint counts", async () => {
    await start();
    await req("admit", { key: "k", model: "m" });
    await req("admit", "not json");
    const ping = (await nats.nc.request("$SRV.PING.sluice")).json<any>();
    expect(ping).toMatchObject({ name: "sluice", type: "io.nats.micro.v1.ping_response" });
    const info = (await nats.nc.request("$SRV.INFO.sluice")).json<any>();
    expect(info.endpoints.map((e: any) => e.subject)).toContain(`${prefix}.admit`);
    // Several services of earlier tests may still answer; find ours by subject.
    const stats = (await nats.nc.request(`$SRV.STATS.sluice.${ping.id}`)).json<any>();
    const admit = stats.endpoints.find((e: any) => e.subject === `${prefix}.admit`);
    expect(admit.num_requests).toBe(2);
    expect(admit.data.errors).toEqual({ bad_request: 1 });
  });
});

describe("service - bad input", () => {
  it("gives every malformed body a clear error reply, changes no state and keeps answering", async () => {
    await start();
    const cases: [string, unknown, RegExp][] = [
      ["admit", "{", /body: not valid JSON/],
      ["admit", { key: "k", model: "m", tokens: -1 }, /^tokens: /],
      ["admit", { key: "k", model: "m", tokens: 1.5 }, /^tokens: /],
      ["admit", { key: "k", model: "m", tokens: 1e300 }, /^tokens: /],
      ["admit", { key: "k", model: "m", cost: "1" }, /^cost: /],
      ["admit", { key: "k", model: "m", nope: 1 }, /^nope: unknown field/],
      ["admit", { key: "k", model: "m", limits: "some" }, /^limits: expected "all", "tightest" or "none"/],
      ["admit", { key: "k", model: "m", scopes: { key: "x" } }, /^scopes/],
      ["admit", { key: "k", model: "m", scopes: { "Bad Kind": "x" } }, /^scopes/],
      ["admit", { model: "m" }, /^key: /],
      ["admit", [], /expected object/i],
      ["report", { outcome: "ok" }, /^lease: /],
      ["report", { lease: "L-x", outcome: "great" }, /^outcome: /],
      ["inspect", { scope: 5 }, /scope/],
      ["admin.reset", { scope: "key:k", what: "everything" }, /^what: /],
    ];
    for (const [subject, body, message] of cases) {
      const r = await req(subject, body);
      expect(r.code, `${subject} ${JSON.stringify(body)}`).toBe("400");
      expect(r.body.error.code).toBe("bad_request");
      expect(r.body.error.message).toMatch(message);
      expect(r.error).toBe(r.body.error.message);
    }
    const big = await req("admit", JSON.stringify({ key: "k", model: "m", id: "x".repeat(70_000) }));
    expect(big.code).toBe("413");
    expect(big.body.error.code).toBe("too_large");
    expect((await req("inspect", { list: "" })).body.scopes).toEqual([]);
    expect((await req("admit", { key: "k", model: "m" })).body.decision).toBe("admit");
  });

  it("survives fuzzed bodies on every subject (fast-check): error or decision, never silence, no state from refusals", async () => {
    await start();
    const subjects = ["admit", "admit.batch", "report", "inspect", "admin.reset", "admin.policy.set"];
    const body = fc.oneof(
      fc.json(),
      fc.string(),
      fc.record({ key: fc.string(), model: fc.string(), tokens: fc.oneof(fc.integer(), fc.double()), cost: fc.double(), waitMs: fc.integer() }, { requiredKeys: [] }),
      fc.record({ lease: fc.string(), outcome: fc.string(), tokens: fc.double() }, { requiredKeys: [] }),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...subjects), body, async (subject, b) => {
        const payload = typeof b === "string" ? b : JSON.stringify(b);
        const r = await nats.nc.request(`${prefix}.${subject}`, payload, { timeout: 2000 });
        const code = r.headers?.get("Nats-Service-Error-Code");
        const reply = r.json<any>();
        if (code) {
          expect(["400", "413"]).toContain(code);
          expect(typeof reply.error.message).toBe("string");
        } else {
          expect(reply).toBeTypeOf("object");
        }
      }),
      { numRuns: 150 },
    );
    // Whatever the fuzz did, the policy is still the one we started with, and the service answers.
    expect((await req("admin.policy.get", {})).body).toEqual(parsePolicy(POLICY));
    expect((await req("admit", { key: "after-fuzz", model: "m" })).body.decision).toBe("admit");
  });
});

describe("service - shutdown", () => {
  it("answers waiting callers and new requests unavailable once stopping", async () => {
    const s = await start({ scopes: { key: { default: { rpm: 1 } } } });
    await req("admit", { key: "k", model: "m" });
    const waiting = req("admit", { key: "k", model: "m", waitMs: 60_000 });
    await new Promise((r) => setTimeout(r, 50));
    const stopping = s.stop();
    const w = await waiting;
    expect(w.code).toBe("503");
    expect(w.body.error.code).toBe("unavailable");
    await stopping;
    service = undefined;
  });

  it("a batch with an item still waiting at shutdown: that item gets unavailable, the others their decisions", async () => {
    const s = await start({ scopes: { key: { default: { rpm: 1 } } } });
    await req("admit", { key: "busy", model: "m" });
    const batch = req("admit.batch", [{ key: "free", model: "m" }, { key: "busy", model: "m", waitMs: 60_000 }, { key: "x", model: "m", tokens: -1 }]);
    await expect.poll(() => s.admissions.waiting).toBe(1);
    await s.stop();
    service = undefined;
    const r = await batch;
    expect(r.code).toBeUndefined();
    expect(r.body).toHaveLength(3);
    // The first was admitted (its lease and event are out): its caller must learn of it.
    expect(r.body[0]).toMatchObject({ decision: "admit", reason: "ok" });
    expect(r.body[0].lease).toMatch(/^L-/);
    expect(r.body[1]).toEqual({ error: { code: "unavailable", message: "sluice is shutting down; retry against another instance or later" } });
    expect(r.body[2].error.code).toBe("bad_request");
  });

  it("a reply held through a pacing delay goes out at shutdown with the delay not yet served", async () => {
    const s = await start({ scopes: { model: { default: { adaptive: { baseMs: 1000, maxMs: 5000, factor: 2, recovery: 0.8, recoverAfter: 5 } } } } });
    const d = (await req("admit", { key: "k", model: "m" })).body;
    await req("report", { lease: d.lease, outcome: "rate_limited" });
    const held = req("admit", { key: "k", model: "m", waitMs: 5_000 });
    await new Promise((r) => setTimeout(r, 50));
    clock.advance(400);
    await s.stop();
    service = undefined;
    expect((await held).body).toMatchObject({ decision: "admit", delayMs: 600 });
  });
});
