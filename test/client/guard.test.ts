import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ManualClock } from "../../src/clock.js";
import { type Clock, SluiceClient, type SluiceClientError, isSluiceClientError } from "../../src/client/mod.js";
import { guard } from "../../src/client/guard.js";
import { waitingClock } from "../../src/client/sleep.js";
import { upstreamRateLimit } from "../../src/client/upstreamRateLimit.js";
import { type Harness, collect, harness, settle, until } from "./helpers.js";

let h: Harness;
beforeAll(async () => {
  h = await harness();
});
afterAll(async () => {
  await h?.close();
});

/** A service, a client, the reports sent on `<p>.report`, and the guard's sleeps on the shared manual clock. */
async function setup(policy: unknown) {
  const { prefix, clock } = await h.start(policy);
  const client = new SluiceClient(h.nc, { prefix });
  const reports = collect(h.nc, `${prefix}.report`);
  await h.nc.flush();
  const sleeps: number[] = [];
  const guardClock = sleepRecorder(clock, sleeps);
  return { prefix, clock, client, reports: reports.messages, sleeps, guardClock };
}

/** The service's clock, with every timer the guard sets recorded (`beforeFire` runs just before one fires). */
function sleepRecorder(clock: ManualClock, sleeps: number[], beforeFire?: () => void): Clock & { beforeFire?: () => void } {
  const c: Clock & { beforeFire?: () => void } = {
    now: () => clock.now(),
    setTimeout: (fn, ms) => {
      sleeps.push(ms);
      return clock.setTimeout(() => {
        c.beforeFire?.();
        fn();
      }, ms);
    },
    clearTimeout: (handle) => clock.clearTimeout(handle),
    beforeFire,
  };
  return c;
}

describe("guard - success", () => {
  it("reports ok with the actual usage and the latencies measured on the injected clock", async () => {
    const { client, clock, reports, guardClock } = await setup({ scopes: { key: { default: { concurrency: 1 } } } });
    const value = await client.guard(
      { key: "k", model: "m", tokens: 100, cost: 0.1 },
      async (ctx) => {
        expect(ctx).toMatchObject({ model: "m", attempt: 1, decision: { decision: "admit" } });
        clock.advance(400);
        ctx.ttft();
        for (let i = 0; i < 4; i++) {
          clock.advance(20);
          ctx.token();
        }
        clock.advance(30);
        return { value: "hello", tokens: 120, cost: 0.12 };
      },
      { clock: guardClock },
    );
    expect(value).toBe("hello");
    expect(reports).toHaveLength(1);
    expect(reports[0]!.body).toEqual({
      lease: expect.stringMatching(/^L-/),
      key: "k",
      model: "m",
      outcome: "ok",
      tokens: 120,
      cost: 0.12,
      latencyMs: 510,
      ttftMs: 400,
      itlMs: 20,
    });
    // Reported and acknowledged before guard resolved: the slot is free again.
    expect((await client.inspect("key:k")).view?.concurrency).toEqual({ limit: 1, held: 0 });
  });

  it("waits the pacing delay before calling, and the first token() stands in for ttft()", async () => {
    const policy = { scopes: { model: { default: { adaptive: { baseMs: 500, maxMs: 5000, factor: 2, recovery: 0.5, recoverAfter: 5 } } } } };
    const { client, clock, reports, sleeps, guardClock } = await setup(policy);
    // An upstream 429 starts pacing: the next slot is 500 ms away.
    const first = await client.admit({ key: "k", model: "m" });
    await client.report({ lease: (first as { lease: string }).lease, outcome: "rate_limited" });
    let calledAt = 0;
    const done = client.guard(
      { key: "k", model: "m" },
      (ctx) => {
        calledAt = clock.now();
        ctx.token();
        clock.advance(5);
        ctx.token();
        return { value: 1 };
      },
      { clock: guardClock },
    );
    await until(() => sleeps.length === 1);
    expect(sleeps).toEqual([500]);
    const t0 = clock.now();
    clock.advance(500);
    expect(await done).toBe(1);
    expect(calledAt).toBe(t0 + 500);
    expect(reports.at(-1)!.body).toMatchObject({ outcome: "ok", ttftMs: 0, itlMs: 5, latencyMs: 5 });
    expect(reports.at(-1)!.body).not.toHaveProperty("tokens");
  });
});

describe("guard - failures of the call", () => {
  it("maps an upstream 429 to rate_limited with its Retry-After in ms, and rethrows it", async () => {
    const { client, reports, guardClock } = await setup({ scopes: {} });
    const upstream = Object.assign(new Error("429 Too Many Requests"), { status: 429, headers: { "Retry-After": "7" } });
    const e = await client
      .guard({ key: "k", model: "m" }, () => Promise.reject(upstream), { clock: guardClock })
      .catch((x: unknown) => x);
    expect(e).toBe(upstream);
    expect(reports[0]!.body).toMatchObject({ outcome: "rate_limited", retryAfterMs: 7000, latencyMs: 0 });

    // statusCode and a fetch-style Headers object work the same; retryAfterMs wins when present.
    const fetchLike = { statusCode: 429, headers: new Headers({ "retry-after": "1.5" }) };
    await expect(client.guard({ key: "k", model: "m" }, () => Promise.reject(fetchLike), { clock: guardClock })).rejects.toBe(fetchLike);
    expect(reports[1]!.body).toMatchObject({ outcome: "rate_limited", retryAfterMs: 1500 });
    await expect(client.guard({ key: "k", model: "m" }, () => Promise.reject({ status: 429, retryAfterMs: 250 }), { clock: guardClock })).rejects.toBeTruthy();
    expect(reports[2]!.body).toMatchObject({ outcome: "rate_limited", retryAfterMs: 250 });
    await expect(client.guard({ key: "k", model: "m" }, () => Promise.reject({ status: 429 }), { clock: guardClock })).rejects.toBeTruthy();
    expect(reports[3]!.body).toMatchObject({ outcome: "rate_limited" });
    expect(reports[3]!.body).not.toHaveProperty("retryAfterMs");
  });

  it("reports any other exception as error and rethrows it, also when fn throws synchronously", async () => {
    const { client, reports, guardClock } = await setup({ scopes: { key: { default: { concurrency: 1 } } } });
    const boom = new Error("boom");
    await expect(client.guard({ key: "k", model: "m" }, async () => Promise.reject(boom), { clock: guardClock })).rejects.toBe(boom);
    await expect(
      client.guard(
        { key: "k", model: "m" },
        () => {
          throw boom;
        },
        { clock: guardClock },
      ),
    ).rejects.toBe(boom);
    expect(reports.map((r) => r.body.outcome)).toEqual(["error", "error"]);
    expect((await client.inspect("key:k")).view?.concurrency?.held).toBe(0);
  });

  it("on abort reports cancelled and rejects with the abort reason at once, freeing the slot", async () => {
    const { client, reports, guardClock } = await setup({ scopes: { key: { default: { concurrency: 1 } } } });
    const ac = new AbortController();
    let sawAbort = false;
    let started = false;
    const run = client.guard(
      { key: "k", model: "m" },
      (ctx) =>
        new Promise<never>((_, reject) => {
          started = true;
          ctx.signal.addEventListener("abort", () => {
            sawAbort = true;
            reject(new Error("upstream call aborted"));
          });
        }),
      { signal: ac.signal, clock: guardClock },
    );
    await until(() => started);
    const reason = new Error("user went away");
    ac.abort(reason);
    await expect(run).rejects.toBe(reason);
    expect(sawAbort).toBe(true);
    // The rejection does not wait for the report, which follows at once.
    await expect.poll(() => reports.map((r) => r.body.outcome)).toEqual(["cancelled"]);
    await expect.poll(async () => (await client.inspect("key:k")).view?.concurrency?.held).toBe(0);

    // Aborted by a timeout signal: reported as timeout.
    const timeout = new AbortController();
    const run2 = client.guard({ key: "k", model: "m" }, () => new Promise<never>(() => {}), { signal: timeout.signal, clock: guardClock });
    await settle(h.nc);
    timeout.abort(new DOMException("took too long", "TimeoutError"));
    await expect(run2).rejects.toMatchObject({ name: "TimeoutError" });
    await expect.poll(() => reports.map((r) => r.body.outcome)).toEqual(["cancelled", "timeout"]);

    // Aborted before anything happened: nothing admitted, nothing reported.
    await expect(client.guard({ key: "k", model: "m" }, () => ({ value: 1 }), { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    await settle(h.nc);
    expect(reports).toHaveLength(2);
  });
});

describe("guard - rejections", () => {
  const BREAKER = { errorRate: 0.5, windowMs: 60_000, minRequests: 2, cooldownMs: 30_000, probes: 1 };

  async function openBreaker(client: SluiceClient, model: string) {
    for (let i = 0; i < 2; i++) {
      const d = await client.admit({ key: "opener", model });
      if (d.decision !== "admit") throw new Error(`could not admit ${model}`);
      await client.report(d.lease, "error");
    }
    expect((await client.inspect(`model:${model}`)).state).toBe("open");
  }

  it("switches to the fallback model when the breaker is open", async () => {
    const policy = { scopes: { model: { default: { breaker: BREAKER }, overrides: { big: { fallback: "small" } } } } };
    const { client, reports, prefix, guardClock } = await setup(policy);
    await openBreaker(client, "big");
    const rejects = collect(h.nc, `${prefix}.decisions.reject.*`);
    await h.nc.flush();
    const used = await client.guard({ key: "k", model: "big" }, (ctx) => ({ value: `${ctx.model}#${ctx.attempt}` }), { clock: guardClock });
    expect(used).toBe("small#2");
    await settle(h.nc);
    expect(rejects.messages.map((m) => [m.body.reason, m.body.model, m.body.fallback])).toEqual([["circuit_open", "big", "small"]]);
    expect(reports.at(-1)!.body).toMatchObject({ outcome: "ok", model: "small" });
  });

  it("tries each fallback once: two open breakers that point at each other end in `rejected`", async () => {
    const policy = {
      scopes: { model: { default: { breaker: BREAKER }, overrides: { a: { fallback: "b" }, b: { fallback: "a" } } } },
    };
    const { client, sleeps, guardClock } = await setup(policy);
    await openBreaker(client, "a");
    await openBreaker(client, "b");
    let called = false;
    const e = (await client
      .guard(
        { key: "k", model: "a" },
        () => {
          called = true;
          return { value: 1 };
        },
        { clock: guardClock, deadlineMs: 10_000 },
      )
      .catch((x: unknown) => x)) as SluiceClientError;
    expect(isSluiceClientError(e, "rejected")).toBe(true);
    expect(e.status).toBe(429);
    // a → b → a would loop; instead the rejection for b is final: its cooldown ends after the deadline.
    expect(e.decision).toMatchObject({ decision: "reject", reason: "circuit_open", scope: "model:b", retryAfterMs: 30_000 });
    expect(called).toBe(false);
    expect(sleeps).toEqual([]);
  });

  it("waits out a rejection's retryAfterMs and tries again", async () => {
    const { client, clock, sleeps, guardClock } = await setup({ scopes: { key: { default: { rpm: 1 } } } });
    expect((await client.admit({ key: "k", model: "m" })).decision).toBe("admit");
    const run = client.guard({ key: "k", model: "m" }, (ctx) => ({ value: ctx.attempt }), { clock: guardClock, deadlineMs: 90_000 });
    await until(() => sleeps.length === 1);
    expect(sleeps).toEqual([60_000]);
    clock.advance(60_000);
    expect(await run).toBe(2);
  });

  it("gives up with `rejected` and the last decision once the next retry would fall after the deadline", async () => {
    const { client, clock, sleeps, guardClock, prefix } = await setup({ scopes: { key: { default: { rpm: 1 } } } });
    expect((await client.admit({ key: "k", model: "m" })).decision).toBe("admit");
    // Another caller takes the refilled unit just before the guard's retry.
    // (A request whose reply is ignored: an admission published without a reply subject is not decided.)
    guardClock.beforeFire = () => void h.nc.request(`${prefix}.admit`, JSON.stringify({ key: "k", model: "m" }), { timeout: 5000 }).catch(() => undefined);
    const run = client.guard({ key: "k", model: "m" }, () => ({ value: 1 }), { clock: guardClock, deadlineMs: 100_000 }).catch((x: unknown) => x);
    await until(() => sleeps.length === 1);
    clock.advance(60_000);
    const e = (await run) as SluiceClientError;
    expect(e).toMatchObject({ code: "rejected", decision: { reason: "rate_limited", scope: "key:k", retryAfterMs: 60_000 } });
    expect(e.message).toMatch(/^rejected until after the deadline/);
    expect(sleeps).toEqual([60_000]);

    // A deadline shorter than the first retry: no wait at all.
    const quick = await client.guard({ key: "k", model: "m" }, () => ({ value: 1 }), { clock: guardClock, deadlineMs: 1000 }).catch((x: unknown) => x);
    expect(quick).toMatchObject({ code: "rejected" });
    expect(sleeps).toEqual([60_000]);
  });

  it("a rejection that can never pass (too_large) is final at once", async () => {
    const { client, sleeps, guardClock } = await setup({ scopes: { key: { default: { tpm: 100 } } } });
    const e = await client.guard({ key: "k", model: "m", tokens: 1000 }, () => ({ value: 1 }), { clock: guardClock }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: "rejected", decision: { reason: "too_large" }, message: expect.stringMatching(/for good/) });
    expect(sleeps).toEqual([]);
  });
});

describe("guard - upstream 429 recognition", () => {
  it("reads status, statusCode, response.status and the retry headers", () => {
    const now = Date.UTC(2026, 0, 1);
    expect(upstreamRateLimit(new Error("x"), now)).toBeUndefined();
    expect(upstreamRateLimit({ status: 500 }, now)).toBeUndefined();
    expect(upstreamRateLimit({ status: 429 }, now)).toEqual({});
    expect(upstreamRateLimit({ response: { status: 429, headers: { "retry-after": "2" } } }, now)).toEqual({ retryAfterMs: 2000 });
    expect(upstreamRateLimit({ status: 429, headers: { "retry-after-ms": "340", "retry-after": "1" } }, now)).toEqual({ retryAfterMs: 340 });
    expect(upstreamRateLimit({ status: 429, headers: { "retry-after": new Date(now + 3000).toUTCString() } }, now)).toEqual({ retryAfterMs: 3000 });
    expect(upstreamRateLimit({ status: 429, headers: { "retry-after": "soon" } }, now)).toEqual({});
  });
});

describe("guard - a report sluice would refuse never keeps the slot", () => {
  it("figures sluice refuses are dropped and the outcome reported alone; an upstream retry time past a day is capped", async () => {
    const { client, reports, guardClock } = await setup({ scopes: { key: { default: { concurrency: 1 } } } });
    const refused: unknown[] = [];
    const held = async () => (await client.inspect("key:k")).view?.concurrency?.held;
    for (const bad of [{ tokens: 12.5 }, { tokens: null as unknown as number }, { cost: -1 }]) {
      expect(await client.guard({ key: "k", model: "m" }, () => ({ value: 1, ...bad }), { clock: guardClock, onReportError: (e) => refused.push(e) })).toBe(1);
      expect(await held()).toBe(0);
    }
    expect(refused).toHaveLength(3);
    expect(refused.every((e) => isSluiceClientError(e, "bad_request"))).toBe(true);
    // Refused by the client's own check, so never sent: only the bare reports went out.
    expect(reports.map((r) => [r.body.outcome, r.body.tokens, r.body.cost])).toEqual([
      ["ok", undefined, undefined], ["ok", undefined, undefined], ["ok", undefined, undefined],
    ]);
    // A Retry-After of 90 000 s: reported rate_limited with a day, the most a report may carry.
    const limited = Object.assign(new Error("429"), { status: 429, headers: { "retry-after": "90000" } });
    await expect(client.guard({ key: "k", model: "m" }, () => Promise.reject(limited), { clock: guardClock })).rejects.toBe(limited);
    expect(reports.at(-1)!.body).toMatchObject({ outcome: "rate_limited", retryAfterMs: 86_400_000 });
    expect(await held()).toBe(0);
  });
});

describe("guard - without a live service", () => {
  const admitted = { decision: "admit" as const, reason: "ok" as const, lease: "L-x-1", delayMs: 0, limits: [] };

  it("an abort rejects at once, even while the report gets no answer", async () => {
    const host = { admit: () => Promise.resolve(admitted), report: () => new Promise<never>(() => {}) };
    const ac = new AbortController();
    let started = false;
    const run = guard(host, { key: "k", model: "m" }, () => {
      started = true;
      return new Promise<never>(() => {});
    }, { signal: ac.signal });
    await until(() => started);
    const reason = new Error("gone");
    ac.abort(reason);
    await expect(run).rejects.toBe(reason);
  });

  it("refuses what is not a request or a function, as a SluiceClientError", async () => {
    const host = { admit: () => Promise.resolve(admitted), report: () => Promise.resolve({ ok: true as const, status: "applied" as const }) };
    await expect(guard(host, null as never, () => ({ value: 1 }))).rejects.toMatchObject({ code: "bad_request", message: "expected an admission request object" });
    await expect(guard(host, { key: "k", model: "m" }, 5 as never)).rejects.toMatchObject({ code: "bad_request" });
  });

  it("waits on timers that keep the process alive (a wait is never cut short by an exit with nothing else pending)", () => {
    const t = waitingClock.setTimeout(() => undefined, 10) as NodeJS.Timeout;
    expect(t.hasRef()).toBe(true);
    waitingClock.clearTimeout(t);
  });
});
