import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { SluiceService } from "../../src/service/SluiceService.js";
import { useNatsServer } from "../helpers/natsFixture.js";

const nats = useNatsServer();
let service: SluiceService | undefined;
let seq = 0;

afterEach(async () => {
  await service?.stop();
  service = undefined;
});

const settle = () => new Promise((r) => setTimeout(r, 30));

describe("health - breaker over NATS", () => {
  it("a burst of errors opens the breaker; callers get circuit_open with fallback; after the cooldown a probe closes it", async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23));
    const prefix = `h${++seq}`;
    const policy = parsePolicy({
      scopes: {
        model: {
          default: { breaker: { errorRate: 0.5, windowMs: 60_000, minRequests: 4, cooldownMs: 30_000, probes: 1 } },
          overrides: { "gpt-4o": { fallback: "gpt-4o-mini" } },
        },
      },
    });
    service = await SluiceService.start({ nc: nats.nc, policy, prefix, clock, random: () => 0 });
    const events: any[] = [];
    const sub = nats.nc.subscribe(`${prefix}.events.model.>`, { callback: (_e, m) => void events.push(m.json()) });
    const req = async (s: string, b: unknown) => (await nats.nc.request(`${prefix}.${s}`, JSON.stringify(b))).json<any>();

    for (let i = 0; i < 4; i++) {
      const d = await req("admit", { key: "k", model: "gpt-4o" });
      expect(d.decision).toBe("admit");
      await req("report", { lease: d.lease, outcome: i === 0 ? "ok" : "error" });
    }
    const refused = await req("admit", { key: "k", model: "gpt-4o" });
    expect(refused).toMatchObject({ decision: "reject", reason: "circuit_open", scope: "model:gpt-4o", fallback: "gpt-4o-mini", retryAfterMs: 30_000 });
    expect((await req("inspect", { scope: "model:gpt-4o" })).state).toBe("open");

    clock.advance(30_000);
    const probe = await req("admit", { key: "k", model: "gpt-4o" });
    expect(probe.decision).toBe("admit");
    expect((await req("inspect", { scope: "model:gpt-4o" })).state).toBe("halfOpen");
    // One probe at a time while half-open.
    expect((await req("admit", { key: "k2", model: "gpt-4o" })).reason).toBe("circuit_open");
    await req("report", { lease: probe.lease, outcome: "ok" });
    expect((await req("inspect", { scope: "model:gpt-4o" })).state).toBe("closed");
    expect((await req("admit", { key: "k", model: "gpt-4o" })).decision).toBe("admit");

    await settle();
    sub.unsubscribe();
    expect(events.map((e) => e.type)).toEqual(["breaker.opened", "breaker.half_open", "breaker.closed"]);
    expect(events[0]).toMatchObject({ scope: "model:gpt-4o" });
  });

  it("the end of a cooldown and of an exhausted budget's day are published when they come, with nobody calling", async () => {
    const start = Date.UTC(2026, 10, 23, 22);
    const clock = new ManualClock(start);
    const prefix = `h${++seq}`;
    const policy = parsePolicy({
      scopes: {
        key: { default: { budget: { limit: 1, period: "day", calendar: true } } },
        model: { default: { breaker: { errorRate: 0.5, windowMs: 60_000, minRequests: 2, cooldownMs: 30_000, probes: 1 } } },
      },
    });
    service = await SluiceService.start({ nc: nats.nc, policy, prefix, clock, random: () => 0 });
    const events: any[] = [];
    const sub = nats.nc.subscribe(`${prefix}.events.>`, { callback: (_e, m) => void events.push(m.json()) });
    const req = async (s: string, b: unknown) => (await nats.nc.request(`${prefix}.${s}`, JSON.stringify(b))).json<any>();
    for (let i = 0; i < 2; i++) {
      const d = await req("admit", { key: "k", model: "m", cost: 0.5 });
      await req("report", { lease: d.lease, outcome: "error", cost: 0.5 });
    }
    const types = () => events.map((e) => `${e.scope} ${e.type}`);
    // The second admission's reservation fills the budget; the second error opens the breaker.
    await expect.poll(types).toEqual(["key:k budget.exhausted", "model:m breaker.opened"]);

    // No request from here on: the events come as time passes.
    clock.advance(30_000);
    await expect.poll(types).toContain("model:m breaker.half_open");
    expect(events.at(-1)).toMatchObject({ type: "breaker.half_open", ts: start + 30_000 });
    clock.advance(Date.UTC(2026, 10, 24) - clock.now());
    await expect.poll(types).toContain("key:k budget.reset");
    expect(events.at(-1)).toMatchObject({ type: "budget.reset", ts: Date.UTC(2026, 10, 24), periodStart: Date.UTC(2026, 10, 24) });
    await nats.nc.flush();
    expect(types()).toEqual(["key:k budget.exhausted", "model:m breaker.opened", "model:m breaker.half_open", "key:k budget.reset"]);
    sub.unsubscribe();
  });

  it("admin.reset with what=breaker closes an open breaker", async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23));
    const prefix = `h${++seq}`;
    const policy = parsePolicy({ scopes: { model: { default: { breaker: { errorRate: 0.5, windowMs: 60_000, minRequests: 2, cooldownMs: 30_000, probes: 1 } } } } });
    service = await SluiceService.start({ nc: nats.nc, policy, prefix, clock, random: () => 0 });
    const req = async (s: string, b: unknown) => (await nats.nc.request(`${prefix}.${s}`, JSON.stringify(b))).json<any>();
    for (let i = 0; i < 2; i++) {
      const d = await req("admit", { key: "k", model: "m" });
      await req("report", { lease: d.lease, outcome: "timeout" });
    }
    expect((await req("admit", { key: "k", model: "m" })).reason).toBe("circuit_open");
    expect(await req("admin.reset", { scope: "model:m", what: "breaker" })).toEqual({ ok: true });
    expect((await req("admit", { key: "k", model: "m" })).decision).toBe("admit");
  });

  it("429 reports grow the pacing interval: admissions carry delayMs, and a caller beyond its patience is refused backoff", async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 23));
    const prefix = `h${++seq}`;
    const policy = parsePolicy({ scopes: { model: { default: { adaptive: { baseMs: 200, maxMs: 5000, factor: 2, recovery: 0.8, recoverAfter: 5, maxDelayMs: 500 } } } } });
    service = await SluiceService.start({ nc: nats.nc, policy, prefix, clock, random: () => 0 });
    const req = async (s: string, b: unknown) => (await nats.nc.request(`${prefix}.${s}`, JSON.stringify(b))).json<any>();
    const d = await req("admit", { key: "k", model: "m" });
    expect(d.delayMs).toBe(0);
    await req("report", { lease: d.lease, outcome: "rate_limited" });
    const delays = [];
    for (let i = 0; i < 3; i++) delays.push(await req("admit", { key: "k", model: "m" }));
    expect(delays.map((x) => x.decision === "admit" ? x.delayMs : x.reason)).toEqual([200, 400, "backoff"]);
    expect(delays[2].retryAfterMs).toBe(100);
  });
});
