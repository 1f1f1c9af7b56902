import { type NatsConnection, connect } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock.js";
import { type SluiceHttpServer, startHttpServer } from "../../src/http/httpServer.js";
import { DashboardFeed } from "../../src/http/dashboardFeed.js";
import { SluiceMetrics } from "../../src/http/metrics.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { ScopeRegistry } from "../../src/registry/ScopeRegistry.js";
import { SluiceService } from "../../src/service/SluiceService.js";
import { useNatsServer } from "../helpers/natsFixture.js";
import { parseMetrics, samples, total, value } from "./helpers.js";

const POLICY = {
  leaseTtlMs: 60_000,
  scopes: {
    key: {
      default: { rpm: 3, concurrency: 2 },
      overrides: { vip: { rpm: 100, budget: { limit: 10 } }, solo: { concurrency: 1 } },
    },
    team: { default: { budget: { limit: 5 } } },
    model: {
      default: {
        breaker: { errorRate: 0.5, windowMs: 60_000, minRequests: 4, cooldownMs: 30_000, probes: 1 },
        adaptive: { baseMs: 200, maxMs: 5000, factor: 2, recovery: 0.5, recoverAfter: 5 },
        latency: { ttftMs: 1000, itlMs: 50, tauMs: 15_000 },
      },
    },
  },
};

const nats = useNatsServer();
let service: SluiceService | undefined;
let http: SluiceHttpServer | undefined;
let prefix = "";
let seq = 0;

afterEach(async () => {
  await service?.stop();
  await http?.stop();
  service = undefined;
  http = undefined;
});

async function start(policy: unknown = POLICY) {
  const clock = new ManualClock(Date.UTC(2026, 10, 23, 12));
  prefix = `m${++seq}`;
  const metrics = new SluiceMetrics();
  service = await SluiceService.start({ nc: nats.nc, policy: parsePolicy(policy), prefix, clock, random: () => 0, observer: metrics.observer });
  http = await startHttpServer({ port: 0, host: "127.0.0.1", service, nc: nats.nc, metrics });
  return { service, http, clock };
}

async function req(subject: string, body: unknown): Promise<any> {
  return (await nats.nc.request(`${prefix}.${subject}`, JSON.stringify(body), { timeout: 5000 })).json();
}

async function scrape() {
  const r = await fetch(`${http!.url}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers.get("content-type")).toContain("text/plain");
  return parseMetrics(await r.text());
}

describe("http - metrics", () => {
  it("counts every decision exactly, by model, decision and reason, and reads the scopes' state on scrape", async () => {
    await start();
    // Every decision event sluice publishes: the counters must match them one for one.
    const published: any[] = [];
    const sub = nats.nc.subscribe(`${prefix}.decisions.>`, { callback: (_e, m) => void published.push(m.json()) });
    await nats.nc.flush();

    // Key k1 (rpm 3) on model m: three admissions, one upstream 429, then two refusals by the key's rate.
    const d1 = await req("admit", { key: "k1", model: "m" });
    await req("report", { lease: d1.lease, outcome: "ok", ttftMs: 400, itlMs: 20 });
    const d2 = await req("admit", { key: "k1", model: "m" });
    await req("report", { lease: d2.lease, outcome: "ok" });
    const d3 = await req("admit", { key: "k1", model: "m" });
    await req("report", { lease: d3.lease, outcome: "rate_limited" });
    expect([d1.decision, d2.decision, d3.decision]).toEqual(["admit", "admit", "admit"]);
    for (let i = 0; i < 2; i++) expect(await req("admit", { key: "k1", model: "m" })).toMatchObject({ decision: "reject", reason: "rate_limited" });

    // A budgeted key named in overrides, counting against a team too.
    const v = await req("admit", { key: "vip", model: "m2", cost: 2, scopes: { team: "search" } });
    expect(v.decision).toBe("admit");
    await req("report", { lease: v.lease, outcome: "ok", cost: 3 });

    // Model m3: four errors open its breaker; the next caller is refused circuit_open.
    for (let i = 0; i < 4; i++) {
      const d = await req("admit", { key: `k3-${i}`, model: "m3" });
      await req("report", { lease: d.lease, outcome: "error" });
    }
    expect(await req("admit", { key: "k3-x", model: "m3" })).toMatchObject({ decision: "reject", reason: "circuit_open" });

    // A batch of two.
    const batch = await req("admit.batch", [{ key: "b1", model: "m2" }, { key: "b2", model: "m2" }]);
    expect(batch.map((d: any) => d.decision)).toEqual(["admit", "admit"]);

    // One caller waits in the queue for key solo's only slot.
    const held = await req("admit", { key: "solo", model: "m2" });
    const waiting = nats.nc.request(`${prefix}.admit`, JSON.stringify({ key: "solo", model: "m2", waitMs: 5000 }), { timeout: 5000 });
    await new Promise((r) => setTimeout(r, 50));
    let m = await scrape();
    expect(value(m, "sluice_waiting_admissions")).toBe(1);
    await req("report", { lease: held.lease, outcome: "ok" });
    expect((await waiting).json<any>().decision).toBe("admit");

    await nats.nc.flush();
    await new Promise((r) => setTimeout(r, 50));
    sub.unsubscribe();
    m = await scrape();

    // Decisions: exactly the published ones.
    const expected = new Map<string, number>();
    for (const ev of published) {
      const k = `${ev.model}|${ev.decision}|${ev.reason}`;
      expected.set(k, (expected.get(k) ?? 0) + 1);
    }
    const counted = new Map<string, number>();
    for (const s of samples(m, "sluice_decisions_total")) counted.set(`${s.labels.model}|${s.labels.decision}|${s.labels.reason}`, s.value);
    expect(counted).toEqual(expected);
    expect(published).toHaveLength(15);
    expect(value(m, "sluice_decisions_total", { model: "m", decision: "admit", reason: "ok" })).toBe(3);
    expect(value(m, "sluice_decisions_total", { model: "m", decision: "reject", reason: "rate_limited" })).toBe(2);
    expect(value(m, "sluice_decisions_total", { model: "m3", decision: "admit", reason: "ok" })).toBe(4);
    expect(value(m, "sluice_decisions_total", { model: "m3", decision: "reject", reason: "circuit_open" })).toBe(1);
    expect(value(m, "sluice_decisions_total", { model: "m2", decision: "admit", reason: "ok" })).toBe(5);

    // Reports, by outcome.
    expect(value(m, "sluice_reports_total", { model: "m", outcome: "ok", status: "applied" })).toBe(2);
    expect(value(m, "sluice_reports_total", { model: "m", outcome: "rate_limited", status: "applied" })).toBe(1);
    expect(value(m, "sluice_reports_total", { model: "m3", outcome: "error", status: "applied" })).toBe(4);

    // Reply times: one observation per admit message (12 immediate, 1 queued), one per batch message.
    expect(value(m, "sluice_decision_seconds_count", { endpoint: "admit", queued: "false" })).toBe(12);
    expect(value(m, "sluice_decision_seconds_count", { endpoint: "admit", queued: "true" })).toBe(1);
    expect(value(m, "sluice_decision_seconds_count", { endpoint: "admit-batch", queued: "false" })).toBe(1);
    expect(value(m, "sluice_decision_seconds_bucket", { endpoint: "admit", queued: "false", le: "+Inf" })).toBe(12);
    expect(value(m, "sluice_decision_seconds_sum", { endpoint: "admit", queued: "false" })).toBeGreaterThan(0);

    // Gauges read from the actors.
    expect(value(m, "sluice_live_actors", { kind: "key" })).toBe(10); // k1, vip, k3-0…k3-3, k3-x, b1, b2, solo
    expect(value(m, "sluice_live_actors", { kind: "model" })).toBe(3);
    expect(value(m, "sluice_live_actors", { kind: "team" })).toBe(1);
    expect(value(m, "sluice_breaker_state", { model: "m" })).toBe(0);
    expect(value(m, "sluice_breaker_state", { model: "m3" })).toBe(2);
    expect(value(m, "sluice_pacing_interval_ms", { model: "m" })).toBe(200);
    expect(value(m, "sluice_pacing_interval_ms", { model: "m3" })).toBe(0);
    expect(value(m, "sluice_latency_average_ms", { model: "m", metric: "ttft" })).toBeCloseTo(400, 6);
    expect(value(m, "sluice_latency_average_ms", { model: "m", metric: "itl" })).toBeCloseTo(20, 6);
    expect(value(m, "sluice_budget_used", { kind: "key", unit: "cost" })).toBeCloseTo(3, 9);
    expect(value(m, "sluice_budget_limit", { kind: "key", unit: "cost" })).toBe(10);
    expect(value(m, "sluice_budget_used", { kind: "team", unit: "cost" })).toBeCloseTo(3, 9);
    expect(value(m, "sluice_budget_limit", { kind: "team", unit: "cost" })).toBe(5);
    expect(value(m, "sluice_budget_reserved", { kind: "team", unit: "cost" })).toBe(0);
    // Per-scope series only for the scopes the policy names in overrides.
    expect(samples(m, "sluice_scope_budget_used").map((s) => s.labels.scope)).toEqual(["key:vip"]);
    expect(value(m, "sluice_scope_budget_used", { scope: "key:vip" })).toBeCloseTo(3, 9);
    expect(value(m, "sluice_scope_budget_limit", { scope: "key:vip" })).toBe(10);
    expect(value(m, "sluice_nats_connected")).toBe(1);
    expect(value(m, "sluice_waiting_admissions")).toBe(0);
    expect(value(m, "sluice_live_leases")).toBe(3); // the batch's two and the waiter's, unreported
    expect(value(m, "sluice_passivated_scopes")).toBe(0);
    expect(value(m, "sluice_memory_short")).toBe(0);
    // The default process metrics are in the same registry.
    expect(samples(m, "process_cpu_user_seconds_total")).toHaveLength(1);
  });

  it("/healthz is 200 while the process runs; /readyz is 200 while serving and 503 once the service stops", async () => {
    const { service } = await start();
    const health = await fetch(`${http!.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ ok: true });
    const ready = await fetch(`${http!.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, nats: true, serving: true });

    await service.stop();
    const notReady = await fetch(`${http!.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ ready: false, nats: true, serving: false });
    expect((await fetch(`${http!.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${http!.url}/nope`)).status).toBe(404);
    expect((await fetch(`${http!.url}/metrics`, { method: "POST" })).status).toBe(405);
  });

  it("/readyz is 503 once the NATS connection is closed", async () => {
    const own = await connect({ servers: nats.server.url });
    const clock = new ManualClock();
    prefix = `m${++seq}`;
    service = await SluiceService.start({ nc: own, policy: parsePolicy(POLICY), prefix, clock });
    http = await startHttpServer({ port: 0, host: "127.0.0.1", service, nc: own });
    expect((await fetch(`${http.url}/readyz`)).status).toBe(200);
    await own.close();
    const r = await fetch(`${http.url}/readyz`);
    expect(r.status).toBe(503);
    expect(((await r.json()) as { nats: boolean }).nats).toBe(false);
    expect(value(await scrape(), "sluice_nats_connected")).toBe(0);
  });

  it("stop() ends the event streams and resolves once every connection is closed", async () => {
    await start();
    await req("admit", { key: "k", model: "m" });
    const res = await fetch(`${http!.url}/events`);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    while (!text.includes("\ndata: {")) text += decoder.decode((await reader.read()).value);
    expect(text).toContain("event: history");
    const frame = JSON.parse(text.split("\ndata: ").pop()!.split("\n")[0]!);
    expect(frame.models.map((x: any) => x.model)).toEqual(["m"]);
    expect(frame.models[0]).toMatchObject({ admitTotal: 1, breaker: "closed", hasBreaker: true, pacingMs: 0 });

    expect(http!.streams).toBe(1);
    // A client that goes away is forgotten.
    const other = new AbortController();
    const second = await fetch(`${http!.url}/events`, { signal: other.signal });
    await second.body!.getReader().read();
    expect(http!.streams).toBe(2);
    other.abort();
    await expect.poll(() => http!.streams).toBe(1);

    await http!.stop();
    for (;;) if ((await reader.read()).done) break;
    expect(http!.streams).toBe(0);
    http = undefined;
  });

  it("/api/snapshot answers the latest frame; the dashboard page is served self-contained", async () => {
    await start();
    const page = await fetch(`${http!.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const html = await page.text();
    expect(html).toContain("new EventSource(");
    // Nothing from elsewhere: no absolute URLs to load.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    const snap = await (await fetch(`${http!.url}/api/snapshot`)).json();
    expect(snap).toMatchObject({ nats: true, serving: true, models: [], top: [] });
  });
});

describe("metrics - bounded labels", () => {
  it("keeps the first maxModels model names and counts the rest as other", () => {
    const metrics = new SluiceMetrics({ maxModels: 2, defaultMetrics: false });
    const ev = (model: string) => ({ ts: 0, key: "k", model, scopes: {}, tokens: 0, cost: 0, decision: "admit" as const, reason: "ok" as const });
    for (const model of ["a", "b", "c", "d", "a"]) metrics.observer.decision!(ev(model));
    return metrics.metrics().then((text) => {
      const m = parseMetrics(text);
      expect(value(m, "sluice_decisions_total", { model: "a" })).toBe(2);
      expect(value(m, "sluice_decisions_total", { model: "b" })).toBe(1);
      expect(value(m, "sluice_decisions_total", { model: "other" })).toBe(2);
      expect(total(m, "sluice_decisions_total")).toBe(5);
      expect(samples(m, "sluice_decisions_total")).toHaveLength(3);
    });
  });
});

describe("metrics - one pass per scrape", () => {
  it("iterates the live actors once per scrape, whatever the number of gauges", async () => {
    const clock = new ManualClock();
    const registry = new ScopeRegistry({ policy: parsePolicy(POLICY), clock });
    registry.get("key:a");
    registry.get("model:m");
    let passes = 0;
    const source = {
      registry: {
        get policy() {
          return registry.policy;
        },
        get size() {
          return registry.size;
        },
        entries: () => {
          passes++;
          return registry.entries();
        },
      },
      clock,
      admissions: { waiting: 0, leases: { size: 0 } },
      memoryShort: true,
    };
    const metrics = new SluiceMetrics({ defaultMetrics: false });
    metrics.bind(source, () => true);
    const first = parseMetrics(await metrics.metrics());
    expect(value(first, "sluice_memory_short")).toBe(1);
    expect(passes).toBe(1);
    expect(value(first, "sluice_live_actors", { kind: "key" })).toBe(1);
    expect(value(first, "sluice_breaker_state", { model: "m" })).toBe(0);
    registry.get("key:b");
    const second = parseMetrics(await metrics.metrics());
    expect(passes).toBe(2);
    expect(value(second, "sluice_live_actors", { kind: "key" })).toBe(2);
    registry.stopAll();
  });
});

describe("dashboard feed - models without a live actor", () => {
  it("shows a model first used after the scan as its policy describes it, not as one without a breaker", () => {
    const clock = new ManualClock();
    const policy = { scopes: { model: { ...POLICY.scopes.model, overrides: { plain: { breaker: null, latency: null, adaptive: null }, big: { fallback: "small", concurrency: 4 } } } } };
    const registry = new ScopeRegistry({ policy: parsePolicy(policy), clock });
    const source = { registry, clock, admissions: { waiting: 0, leases: { size: 0 } }, serving: true };
    const metrics = new SluiceMetrics({ defaultMetrics: false, scan: { maxAgeMs: 60_000 } });
    metrics.bind(source, () => true);
    const feed = new DashboardFeed({ metrics, source, connected: () => true });
    expect(feed.tick().models).toEqual([]); // the scan is taken now, with no actor yet, and kept
    const ev = (model: string) => ({ ts: 0, key: "k", model, scopes: {}, tokens: 0, cost: 0, decision: "admit" as const, reason: "ok" as const });
    for (const model of ["big", "plain"]) {
      registry.get(`model:${model}`);
      metrics.observer.decision!(ev(model));
    }
    const byModel = new Map(feed.tick().models.map((m) => [m.model, m]));
    expect(byModel.get("big")).toMatchObject({ hasBreaker: true, breaker: "closed", fallback: "small", concurrency: 4, ttftLimitMs: 1000, itlLimitMs: 50, pacingMs: 0, admitTotal: 1 });
    expect(byModel.get("plain")).toMatchObject({ hasBreaker: false, ttftMs: null, pacingMs: null, admitTotal: 1 });
    registry.stopAll();
  });
});

describe("dashboard feed - frames that share a scan", () => {
  it("numbers every frame, so a frame made from the cached scan (same ts) is still told apart and keeps its own counts", () => {
    const clock = new ManualClock();
    const registry = new ScopeRegistry({ policy: parsePolicy(POLICY), clock });
    const source = { registry, clock, admissions: { waiting: 0, leases: { size: 0 } }, serving: true };
    const metrics = new SluiceMetrics({ defaultMetrics: false, scan: { maxAgeMs: 60_000 } });
    metrics.bind(source, () => true);
    const feed = new DashboardFeed({ metrics, source, connected: () => true });
    const reject = { ts: 0, key: "k", model: "m", scopes: {}, tokens: 0, cost: 0, decision: "reject" as const, reason: "circuit_open" as const };
    registry.get("model:m");
    const first = feed.tick();
    metrics.observer.decision!(reject);
    metrics.observer.decision!(reject);
    clock.advance(1000); // the scan is cached (maxAgeMs 60 s): the next frame reads the same scan and ts
    const second = feed.tick();
    expect(second.ts).toBe(first.ts);
    expect(second.seq).toBe(first.seq + 1);
    expect(second.models.find((m) => m.model === "m")).toMatchObject({ rejects: { circuit_open: 2 }, rejectTotal: 2 });
    expect(feed.history().map((p) => p.seq)).toEqual([first.seq, second.seq]);
    expect(feed.history()[1]!.m.m!.r).toEqual({ circuit_open: 2 });
    // A model named "__proto__" is a key of the point like any other (it used to set the object's prototype).
    metrics.observer.decision!({ ...reject, model: "__proto__" });
    const third = feed.tick();
    expect(third.models.map((m) => m.model)).toContain("__proto__");
    expect(Object.hasOwn(feed.history()[2]!.m, "__proto__")).toBe(true);
    expect(JSON.parse(JSON.stringify(feed.history()[2])).m.__proto__.r).toEqual({ circuit_open: 1 });
    registry.stopAll();
  });
});
