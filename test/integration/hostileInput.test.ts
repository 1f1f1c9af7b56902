/**
 * Inputs found by fuzzing a live sluice that crashed it, made it drop its NATS
 * connection or let one key take another's admission. Each must be a clear reply,
 * and sluice must answer normally afterwards.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type NatsConnection, connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { SluiceService } from "../../src/service/SluiceService.js";
import { type NatsServerHandle, startNatsServer } from "../helpers/natsServer.js";

/** A small max_payload, so that a reply over it is easy to make. */
const MAX_PAYLOAD = 65_536;
const POLICY = {
  scopes: {
    key: { default: { rpm: 600, tpm: 1_000_000, concurrency: 1000, budget: { limit: 100 } } },
    model: { default: { rpm: 60_000, concurrency: 10_000 } },
  },
};

let server: NatsServerHandle;
let nc: NatsConnection;
let service: SluiceService;
const prefix = "hostile";

beforeAll(async () => {
  const conf = join(mkdtempSync(join(tmpdir(), "sluice-hostile-")), "nats.conf");
  writeFileSync(conf, `max_payload: ${MAX_PAYLOAD}\n`);
  server = await startNatsServer({ jetstream: true, args: ["-c", conf] });
  nc = await connect({ servers: server.url });
  service = await SluiceService.start({
    nc, prefix, policy: parsePolicy(POLICY), clock: new ManualClock(Date.UTC(2026, 10, 24, 12)), random: () => 0,
    persistence: {},
  });
});
afterAll(async () => {
  await service?.stop();
  await nc?.drain();
  await server?.stop();
});

async function req(subject: string, body: unknown) {
  const r = await nc.request(`${prefix}.${subject}`, typeof body === "string" ? body : JSON.stringify(body), { timeout: 5000 });
  return { body: r.json<any>(), code: r.headers?.get("Nats-Service-Error-Code") || undefined, error: r.headers?.get("Nats-Service-Error") || undefined };
}

async function stillServes() {
  expect((await req("admit", { key: "ok", model: "m" })).body).toMatchObject({ decision: "admit" });
}

describe("hostile input - answered, never fatal", () => {
  it("a newline in a field name or scope kind is a bad_request whose header carries no newline", async () => {
    const cases: [string, unknown][] = [
      ["admit", { key: "a", model: "m", "x\nfoo": 1 }],
      ["admit", { key: "a", model: "m", scopes: { "a\nb": "x" } }],
      ["report", { outcome: "ok", "\r\n": 1 }],
      ["inspect", { scope: "a:b", "\n": 1 }],
      ["admin.reset", { scope: "a:b", "\n": 1 }],
      ["admin.policy.set", { scopes: {}, "evil\r\nheader": 1 }],
    ];
    for (const [subject, body] of cases) {
      const r = await req(subject, body);
      expect(r.code, subject).toBe("400");
      expect(r.body.error.code, subject).toBe("bad_request");
      expect(r.error, subject).not.toMatch(/[\r\n]/);
    }
    await stillServes();
  });

  it("an error message quoting a huge field name is clipped, in the header and the body", async () => {
    const r = await req("admit", { key: "a", model: "m", ["f".repeat(50_000)]: 1 });
    expect(r.code).toBe("400");
    expect(r.body.error.message.length).toBeLessThanOrEqual(1000);
    expect(r.error!.length).toBeLessThanOrEqual(1000);
    await stillServes();
  });

  it("a batch reply over max_payload goes out without the limits, every lease kept; an inspect list over it is too_large", async () => {
    const items = Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, model: "m", tokens: 1 }));
    expect(JSON.stringify(items).length).toBeLessThan(MAX_PAYLOAD);
    const r = await req("admit.batch", items);
    expect(r.code).toBeUndefined();
    expect(r.body).toHaveLength(200);
    expect(r.body.every((d: any) => d.decision === "admit" && typeof d.lease === "string" && d.limits.length === 0)).toBe(true);
    // The same with the tightest limit only fits, and keeps it.
    const tight = await req("admit.batch", items.slice(0, 50).map((x) => ({ ...x, limits: "tightest" })));
    expect(tight.body.every((d: any) => d.limits.length === 1)).toBe(true);

    // 300 live keys of 240 characters: their list is over 64 KiB.
    for (let b = 0; b < 3; b++) {
      const long = Array.from({ length: 100 }, (_, i) => ({ key: `${"L".repeat(236)}${b}${String(i).padStart(3, "0")}`, model: "m", limits: "none" }));
      expect((await req("admit.batch", long)).body.every((d: any) => d.decision === "admit")).toBe(true);
    }
    const list = await req("inspect", { list: "key:L", limit: 10_000 });
    expect(list.code).toBe("413");
    expect(list.body.error.message).toMatch(/^reply: \d+ bytes, over the NATS server's max_payload of 65536; ask for fewer/);
    expect((await req("inspect", { list: "key:L", limit: 10 })).body.scopes).toHaveLength(10);
    await stillServes();
  });

  it("an id cannot be made to collide with another key's: a NUL in the key or the id changes nothing", async () => {
    const a = (await req("admit", { key: "victim\u0000x", model: "m", id: "y" })).body;
    const b = (await req("admit", { key: "victim", model: "m", id: "x\u0000y", tokens: 5 })).body;
    expect(a.decision).toBe("admit");
    expect(b.decision).toBe("admit");
    expect(b.lease).not.toBe(a.lease);
    expect((await req("inspect", { scope: "key:victim" })).body.live).toBe(true);
  });

  it("a reset scope is held to 256 characters of value: a journaled reset never passes NATS's control-line limit", async () => {
    const long = (await req("admin.reset", { scope: `key:${"😀".repeat(300)}` }));
    expect(long.code).toBe("400");
    expect(long.body.error.message).toMatch(/^scope: expected "kind:value"/);
    const ok = await req("admin.reset", { scope: `key:${"😀".repeat(256)}` });
    expect(ok.body).toEqual({ ok: true });
    await stillServes();
  });

  it("a report naming a lease with a control character is a bad_request, not a report that can never be recorded", async () => {
    const r = await req("report", { lease: "a\nb", key: "nl", model: "m", outcome: "ok" });
    expect(r.code).toBe("400");
    expect(r.body.error.message).toMatch(/^lease: expected a lease id/);
    await stillServes();
  });
});

describe("hostile input - refused, where it used to pass changed", () => {
  it("a field named __proto__ is refused, not silently dropped", async () => {
    for (const [subject, body] of [
      ["admit", '{"key":"a","model":"m","scopes":{"__proto__":123}}'],
      ["admit.batch", '[{"key":"a","model":"m","scopes":{"__proto__":{"x":1}}}]'],
      ["admin.policy.set", '{"scopes":{"__proto__":{"default":{"rpm":1}}}}'],
    ] as const) {
      const r = await req(subject, body);
      expect(r.code, subject).toBe("400");
      expect(r.body.error.message, subject).toBe("body: a field named __proto__ is not allowed");
    }
    // A value that merely says __proto__ is a name like any other.
    expect((await req("admit", { key: "__proto__", model: "m" })).body.decision).toBe("admit");
  });

  it("a policy's jitter is at most 10, and the adaptive limit's bounds must hold together", async () => {
    const jitter = await req("admin.policy.set", { jitter: { min: 1, max: 1e308 }, scopes: {} });
    expect(jitter.body.error.message).toBe("policy: jitter.max: at most 10");
    const bounds = await req("admin.policy.set", { scopes: { model: { default: { latency: { ttftMs: 1, tauMs: 1, minConcurrency: 10, maxConcurrency: 1 } } } } });
    expect(bounds.body.error.message).toBe("policy: scopes.model.default.latency.minConcurrency: must be at most maxConcurrency");
    const initial = await req("admin.policy.set", { scopes: { model: { default: { latency: { ttftMs: 1, tauMs: 1, maxConcurrency: 8, initialConcurrency: 9 } } } } });
    expect(initial.body.error.message).toBe("policy: scopes.model.default.latency.initialConcurrency: must lie within minConcurrency and maxConcurrency");
    await stillServes();
  });
});

describe("hostile input - admissions nobody can receive", () => {
  it("an admission published without a reply subject is not decided: no slot, no usage, no event", async () => {
    const events: string[] = [];
    const sub = nc.subscribe(`${prefix}.decisions.*.ghost-model`, { callback: (_e, m) => void events.push(m.subject) });
    nc.publish(`${prefix}.admit`, JSON.stringify({ key: "ghost", model: "ghost-model", cost: 1 }));
    nc.publish(`${prefix}.admit.batch`, JSON.stringify([{ key: "ghost2", model: "ghost-model" }]));
    await nc.flush();
    // A request after them on the same connection is answered after they were handled.
    await stillServes();
    expect((await req("inspect", { scope: "key:ghost" })).body.live).toBe(false);
    expect((await req("inspect", { scope: "key:ghost2" })).body.live).toBe(false);
    await nc.flush();
    sub.unsubscribe();
    expect(events).toEqual([]);
  });
});
