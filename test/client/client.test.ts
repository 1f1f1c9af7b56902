import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { firstValueFrom, take, toArray } from "rxjs";
import {
  DEFAULT_CLIENT_OPTIONS,
  SluiceClient,
  SluiceClientError,
  decisionSubject,
  encodeSubjectToken,
  isSluiceClientError,
  type Decision,
} from "../../src/client/mod.js";
import type { Msg } from "@nats-io/transport-node";
import { SPLIT_ABOVE } from "../../src/client/AdmitBatcher.js";
import { type Harness, collect, harness, settle, until } from "./helpers.js";

const POLICY = {
  leaseTtlMs: 60_000,
  scopes: {
    key: {
      default: { rpm: 100, concurrency: 60 },
      overrides: {
        tight: { rpm: 1 },
        // More than 32 scopes with its parents: every admission of this key is a per-item bad_request in sluice.
        wide: { parents: Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`p${i}`, "x"])) },
      },
    },
    model: { default: { rpm: 1000 } },
  },
};

let h: Harness;
beforeAll(async () => {
  h = await harness();
});
afterAll(async () => {
  await h?.close();
});

async function setup(policy: unknown = POLICY, opts: ConstructorParameters<typeof SluiceClient>[1] = {}) {
  const s = await h.start(policy);
  return { ...s, client: new SluiceClient(h.nc, { prefix: s.prefix, ...opts }) };
}

/** Messages sent to `<p>.admit` and `<p>.admit.batch` while `fn` runs. */
async function countAdmitMessages<T>(prefix: string, fn: () => Promise<T>) {
  const single = collect(h.nc, `${prefix}.admit`);
  const batch = collect(h.nc, `${prefix}.admit.batch`);
  await h.nc.flush();
  const result = await fn();
  await settle(h.nc);
  single.stop();
  batch.stop();
  return { result, single: single.messages, batch: batch.messages };
}

const leaseOf = (d: Decision) => (d.decision === "admit" ? d.lease : undefined);

describe("client - calls against the service", () => {
  it("admits, reports with an ack, and reports the same lease again as a duplicate", async () => {
    const { client } = await setup();
    const d = await client.admit({ key: "k", model: "m", tokens: 10 });
    expect(d).toMatchObject({ decision: "admit", reason: "ok", delayMs: 0 });
    const lease = leaseOf(d)!;
    expect(await client.report(lease, "ok", { tokens: 12 })).toEqual({ ok: true, status: "applied" });
    expect(await client.report({ lease, outcome: "ok" })).toEqual({ ok: true, status: "duplicate" });
  });

  it("a rejection is a decision, not an error", async () => {
    const { client } = await setup();
    expect((await client.admit({ key: "tight", model: "m" })).decision).toBe("admit");
    expect(await client.admit({ key: "tight", model: "m" })).toMatchObject({
      decision: "reject",
      reason: "rate_limited",
      scope: "key:tight",
      retryAfterMs: 60_000,
    });
  });

  it("publishReport is applied without an ack", async () => {
    const { client } = await setup({ scopes: { key: { default: { concurrency: 1 } } } });
    const d = await client.admit({ key: "k", model: "m" });
    expect(client.publishReport(leaseOf(d)!, "ok")).toBeUndefined();
    await settle(h.nc);
    expect((await client.inspect("key:k")).view?.concurrency).toEqual({ limit: 1, held: 0 });
  });

  it("admitBatch answers in order, with errors in place for the items that do not validate", async () => {
    const { client, prefix } = await setup();
    const { result, single, batch } = await countAdmitMessages(prefix, () =>
      client.admitBatch([{ key: "a", model: "m" }, { key: "", model: "m" }, { key: "wide", model: "m" }, { key: "b", model: "m", tokens: 3 }]),
    );
    expect(result).toHaveLength(4);
    expect(result[0]).toMatchObject({ decision: "admit" });
    expect(result[1]).toBeInstanceOf(SluiceClientError);
    expect(result[1]).toMatchObject({ code: "bad_request", status: 400 });
    expect((result[1] as SluiceClientError).message).toMatch(/^\[1\]\.key: /);
    // Refused by sluice, not here, in its place.
    expect(result[2]).toMatchObject({ code: "bad_request", message: "[2].scopes: more than 32 scopes with parents" });
    expect(result[3]).toMatchObject({ decision: "admit" });
    // The invalid item was never sent: one message with the three valid ones.
    expect(single).toHaveLength(0);
    expect(batch).toHaveLength(1);
    expect(batch[0]!.body).toHaveLength(3);
    expect(await client.admitBatch([])).toEqual([]);
  });

  it("the limits option asks for as many limits where a call does not say, alone and in batches", async () => {
    const { client, prefix } = await setup(POLICY, { limits: "tightest" });
    const { result, batch } = await countAdmitMessages(prefix, () =>
      Promise.all([client.admit({ key: "a", model: "m" }), client.admit({ key: "a", model: "m", limits: "all" }), client.admit({ key: "a", model: "m", limits: "none" })]),
    );
    expect(batch).toHaveLength(1);
    expect(batch[0]!.body.map((b: { limits: string }) => b.limits)).toEqual(["tightest", "all", "none"]);
    expect(result.map((d) => d.limits.length)).toEqual([1, 3, 0]);
    expect(result[0]!.limits[0]).toMatchObject({ scope: "key:a", kind: "concurrency", remaining: 59 });
    const [alone] = await client.admitBatch([{ key: "b", model: "m" }]);
    expect((alone as Decision).limits).toHaveLength(1);
  });

  it("inspect shows a live scope's figures; list finds live scopes by prefix", async () => {
    const { client } = await setup();
    await client.admit({ key: "k1", model: "m1" });
    await client.admit({ key: "k2", model: "m1" });
    const s = await client.inspect("key:k1");
    expect(s).toMatchObject({ scope: "key:k1", live: true, state: "closed", policy: { rpm: 100, concurrency: 60 } });
    expect(s.view).toMatchObject({ buckets: { rpm: { limit: 100, remaining: 99 } }, concurrency: { limit: 60, held: 1 } });
    expect(await client.inspect("key:nobody")).toMatchObject({ live: false });
    expect(await client.list("key:")).toEqual({
      scopes: [
        { scope: "key:k1", state: "closed" },
        { scope: "key:k2", state: "closed" },
      ],
      truncated: false,
    });
    expect((await client.list()).scopes.map((x) => x.scope)).toEqual(["key:k1", "key:k2", "model:m1"]);
    expect(await client.list("", { limit: 1 })).toMatchObject({ truncated: true });
  });

  it("policy.get returns the document in force; policy.set replaces it and live scopes feel it", async () => {
    const { client } = await setup();
    expect(await client.policy.get()).toMatchObject({ scopes: { key: { default: { rpm: 100 } } } });
    await client.admit({ key: "k", model: "m" });
    await client.policy.set({ scopes: { key: { default: { rpm: 1 } } } });
    expect(await client.policy.get()).toEqual({ scopes: { key: { default: { rpm: 1 } } } });
    // The bucket keeps its level, clamped to the new capacity of 1: one more, then none.
    expect((await client.admit({ key: "k", model: "m" })).decision).toBe("admit");
    expect(await client.admit({ key: "k", model: "m" })).toMatchObject({ decision: "reject", reason: "rate_limited" });
  });

  it("reset usage refills a scope's buckets", async () => {
    const { client } = await setup();
    await client.admit({ key: "tight", model: "m" });
    expect((await client.admit({ key: "tight", model: "m" })).decision).toBe("reject");
    await client.reset("key:tight", "usage");
    expect((await client.admit({ key: "tight", model: "m" })).decision).toBe("admit");
  });
});

describe("client - errors", () => {
  it("refuses a bad request before sending it, naming the field", async () => {
    const { client, prefix } = await setup();
    const { result, single, batch } = await countAdmitMessages(prefix, () =>
      client.admit({ key: "k", model: "m", tokens: -1 }).then(
        () => undefined,
        (e: unknown) => e,
      ),
    );
    expect(isSluiceClientError(result, "bad_request")).toBe(true);
    expect(result).toMatchObject({ code: "bad_request", status: 400, message: expect.stringMatching(/^tokens: expected a non-negative integer/) });
    expect(single.length + batch.length).toBe(0);
    await expect(client.report("L-1", "fine" as never)).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/^outcome: /) });
    expect(() => client.publishReport({ outcome: "ok" })).toThrow("lease: a report names its lease, or its key and model");
    await expect(client.reset("nope")).rejects.toMatchObject({ code: "bad_request", message: expect.stringMatching(/^scope: /) });
  });

  it("refuses timers past what Node's timers reach, takes null options as the defaults, and a batch over the size limit as too_large unsent", async () => {
    expect(() => new SluiceClient(h.nc, { timeoutMs: 2 ** 31 })).toThrow(/^options\.timeoutMs: expected a positive integer of ms, at most 3600000 \(got 2147483648\)$/);
    expect(() => new SluiceClient(h.nc, { batchWindowMs: 1e12 })).toThrow(/^options\.batchWindowMs: /);
    expect(() => new SluiceClient(h.nc, { reportRetryMs: 1e12 })).toThrow(/^options\.reportRetryMs: /);
    expect(new SluiceClient(h.nc, null).options.timeoutMs).toBe(5000);
    expect(() => new SluiceClient(h.nc, "fast" as never)).toThrow("options: expected an object");

    const { client, prefix } = await setup();
    const wide = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, "v".repeat(256)]));
    const { result, batch } = await countAdmitMessages(prefix, () =>
      client.admitBatch(Array.from({ length: 1000 }, (_, i) => ({ key: `k${i}`, model: "m", scopes: wide }))).catch((e: unknown) => e),
    );
    expect(result).toMatchObject({ code: "too_large", status: 413, message: expect.stringMatching(/^admit\.batch: \d+ bytes, at most \d+$/) });
    expect(batch).toHaveLength(0);
  });

  it("turns an error reply into a SluiceClientError with its code and status", async () => {
    const { client } = await setup();
    const e = await client.policy.set({ scopes: { key: { default: { rpm: "fast" } } } } as never).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SluiceClientError);
    expect(e).toMatchObject({ code: "bad_request", status: 400, message: "policy: scopes.key.default.rpm: expected a positive number" });
    // A report for another key's lease is refused by sluice, not here.
    const d = await client.admit({ key: "k", model: "m" });
    await expect(client.report({ lease: leaseOf(d)!, key: "other", model: "m", outcome: "ok" })).rejects.toMatchObject({ code: "bad_request", status: 400 });
  });

  it("no responders and timeouts are `unavailable`, with the NATS error as cause", async () => {
    const lonely = new SluiceClient(h.nc, { prefix: "nobody-serves-this" });
    const e = await lonely.admit({ key: "k", model: "m" }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: "unavailable", status: 503, message: expect.stringMatching(/no responders/) });
    expect((e as Error).cause).toBeInstanceOf(Error);

    // A responder that never answers.
    const mute = h.nc.subscribe("mute.inspect", { callback: () => {} });
    await h.nc.flush();
    const slow = new SluiceClient(h.nc, { prefix: "mute", timeoutMs: 50 });
    const t = await slow.inspect("key:k").catch((x: unknown) => x);
    mute.unsubscribe();
    expect(t).toMatchObject({ code: "unavailable", message: "mute.inspect: timed out" });
    expect(((t as Error).cause as Error).name).toBe("TimeoutError");
  });

  it("validates its options once, naming the field and the value", () => {
    expect(() => new SluiceClient(h.nc, { maxBatch: 0 })).toThrow("options.maxBatch: expected an integer from 1 to 1000 (got 0)");
    expect(() => new SluiceClient(h.nc, { prefix: "a b" })).toThrow(/^options\.prefix: /);
    expect(() => new SluiceClient(h.nc, { timeoutMs: -5 })).toThrow(SluiceClientError);
    expect(new SluiceClient(h.nc).options).toEqual(DEFAULT_CLIENT_OPTIONS);
    expect(new SluiceClient(h.nc, { timeoutMs: undefined }).options.timeoutMs).toBe(5_000);
    expect(() => new SluiceClient(h.nc, { reportRetries: -1 })).toThrow("options.reportRetries: expected an integer from 0 to 20 (got -1)");
    expect(() => new SluiceClient(h.nc, { limits: "few" as "none" })).toThrow('options.limits: expected "all", "tightest" or "none" (got "few")');
  });

  it("resends a report with a lease while sluice answers unavailable, and never one without a lease", async () => {
    // A stand-in for sluice whose journal is down twice, then up.
    const prefix = "flaky";
    let calls = 0;
    const sub = h.nc.subscribe(`${prefix}.report`, {
      callback: (_err, msg: Msg) => {
        calls++;
        if (calls <= 2) msg.respond(JSON.stringify({ error: { code: "unavailable", message: "report not recorded: journal down" } }));
        else msg.respond(JSON.stringify({ ok: true, status: "applied" }));
      },
    });
    await h.nc.flush();
    const client = new SluiceClient(h.nc, { prefix, reportRetryMs: 1 });
    expect(await client.report("L-1", "ok")).toEqual({ ok: true, status: "applied" });
    expect(calls).toBe(3);

    // Without a lease each arrival would count again: sent once, the error goes to the caller.
    calls = 0;
    await expect(client.report({ key: "k", model: "m", outcome: "ok", cost: 1 })).rejects.toMatchObject({ code: "unavailable" });
    expect(calls).toBe(1);

    // The resends are bounded by reportRetries.
    calls = -10;
    const patient = new SluiceClient(h.nc, { prefix, reportRetryMs: 1, reportRetries: 2 });
    await expect(patient.report("L-2", "ok")).rejects.toMatchObject({ code: "unavailable" });
    expect(calls).toBe(-7);
    sub.unsubscribe();
  });
});

describe("client - auto-batching", () => {
  it("a lone call goes out at once as a single <p>.admit", async () => {
    const { client, prefix } = await setup();
    const { result, single, batch } = await countAdmitMessages(prefix, () => client.admit({ key: "k", model: "m" }));
    expect(result.decision).toBe("admit");
    expect(single).toHaveLength(1);
    expect(single[0]!.body).toEqual({ key: "k", model: "m", tokens: 0, cost: 0, scopes: {}, waitMs: 0 });
    expect(batch).toHaveLength(0);
  });

  it("50 concurrent calls go out as two admit.batch messages of 25, in order, each caller with its own decision", async () => {
    const { client, prefix } = await setup();
    const { result, single, batch } = await countAdmitMessages(prefix, () =>
      Promise.all(Array.from({ length: 50 }, (_, i) => client.admit({ key: `k${i % 5}`, model: "m", tokens: i }))),
    );
    expect(single).toHaveLength(0);
    // More than SPLIT_ABOVE in one turn: two halves, so the first half's answers need not wait for the second.
    expect(batch.map((m) => m.body.length)).toEqual([25, 25]);
    expect(batch.flatMap((m) => m.body.map((r: { tokens: number }) => r.tokens))).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(result.every((d) => d.decision === "admit")).toBe(true);
    expect(new Set(result.map(leaseOf)).size).toBe(50);
    // Each caller got the decision for its own request: its key's concurrency slots count up in call order.
    const k0 = result.filter((_, i) => i % 5 === 0).map((d) => d.limits.find((l) => l.scope === "key:k0" && l.kind === "concurrency")!.remaining);
    expect(k0).toEqual([59, 58, 57, 56, 55, 54, 53, 52, 51, 50]);
  });

  it("up to SPLIT_ABOVE calls in one turn go as one message", async () => {
    const { client, prefix } = await setup();
    const { single, batch } = await countAdmitMessages(prefix, () => Promise.all(Array.from({ length: SPLIT_ABOVE }, () => client.admit({ key: "k", model: "m" }))));
    expect(single).toHaveLength(0);
    expect(batch.map((m) => m.body.length)).toEqual([SPLIT_ABOVE]);
  });

  it("a bad call among them gets its own error and the others their decisions", async () => {
    const { client, prefix } = await setup();
    const calls = () =>
      Array.from({ length: 30 }, (_, i) => {
        if (i === 7) return client.admit({ key: "k", model: "" }); // refused here
        if (i === 20) return client.admit({ key: "wide", model: "m" }); // refused by sluice, inside the batch
        return client.admit({ key: "k", model: "m" });
      });
    const { result, batch } = await countAdmitMessages(prefix, () => Promise.allSettled(calls()));
    expect(batch).toHaveLength(1);
    expect(batch[0]!.body).toHaveLength(29);
    const failed = result.flatMap((r, i) => (r.status === "rejected" ? [[i, r.reason] as const] : []));
    expect(failed.map(([i]) => i)).toEqual([7, 20]);
    expect(failed[0]![1]).toMatchObject({ code: "bad_request", message: expect.stringMatching(/^model: /) });
    expect(failed[1]![1]).toMatchObject({ code: "bad_request", status: 400, message: "scopes: more than 32 scopes with parents" });
    const leases = result.flatMap((r) => (r.status === "fulfilled" ? [leaseOf(r.value)] : []));
    expect(new Set(leases).size).toBe(28);
  });

  it("maxBatch splits a burst; batch: false sends every call alone", async () => {
    const a = await setup(POLICY, { maxBatch: 20 });
    const split = await countAdmitMessages(a.prefix, () => Promise.all(Array.from({ length: 50 }, () => a.client.admit({ key: "k", model: "m" }))));
    // Each maxBatch calls go as soon as they are queued; the rest at the end of the turn.
    expect(split.batch.map((m) => m.body.length)).toEqual([20, 20, 10]);
    expect(split.single).toHaveLength(0);

    const b = await setup(POLICY, { batch: false });
    const alone = await countAdmitMessages(b.prefix, () => Promise.all(Array.from({ length: 10 }, () => b.client.admit({ key: "k", model: "m" }))));
    expect(alone.single).toHaveLength(10);
    expect(alone.batch).toHaveLength(0);
  });

  it("a call that waits in sluice's queue is sent alone, so it holds nobody else's reply", async () => {
    const { client, prefix } = await setup();
    const { result, single, batch } = await countAdmitMessages(prefix, () =>
      Promise.all([client.admit({ key: "k", model: "m", waitMs: 1000 }), client.admit({ key: "k", model: "m" }), client.admit({ key: "k", model: "m" })]),
    );
    expect(result.map((d) => d.decision)).toEqual(["admit", "admit", "admit"]);
    expect(single.map((m) => m.body.waitMs)).toEqual([1000]);
    expect(batch.map((m) => m.body.length)).toEqual([2]);
  });

  it("with a window, calls made while a message is unanswered are held until its reply, then sent together", async () => {
    // A responder under the test's control, so that "unanswered" lasts as long as the test says.
    const prefix = "held";
    const received: Msg[] = [];
    const sub = h.nc.subscribe(`${prefix}.admit.>`, { callback: (_e, m) => void received.push(m) });
    const one = h.nc.subscribe(`${prefix}.admit`, { callback: (_e, m) => void received.push(m) });
    await h.nc.flush();
    const admitted = (n: number) => ({ decision: "admit", reason: "ok", lease: `L-${n}`, delayMs: 0, limits: [] });
    const client = new SluiceClient(h.nc, { prefix, batchWindowMs: 60_000 });

    const first = client.admit({ key: "k", model: "m" });
    const later: Promise<Decision>[] = [];
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setImmediate(r)); // a later turn each
      later.push(client.admit({ key: "k", model: "m", tokens: i }));
    }
    await settle(h.nc);
    expect(received.map((m) => m.subject)).toEqual([`${prefix}.admit`]);
    received[0]!.respond(JSON.stringify(admitted(0)));
    await until(() => received.length === 2);
    expect(received[1]!.subject).toBe(`${prefix}.admit.batch`);
    const items = received[1]!.json<{ tokens: number }[]>();
    expect(items.map((r) => r.tokens)).toEqual([0, 1, 2, 3, 4]);
    received[1]!.respond(JSON.stringify(items.map((_, i) => admitted(i + 1))));
    expect((await Promise.all([first, ...later])).map(leaseOf)).toEqual(["L-0", "L-1", "L-2", "L-3", "L-4", "L-5"]);
    sub.unsubscribe();
    one.unsubscribe();
  });
});

describe("client - decisions feed", () => {
  it("is an Observable filtered by decision and model, with the model encoded in the subject", async () => {
    const { client, prefix } = await setup();
    const feed = client.decisions({ decision: "reject", model: "gpt-4.1 mini" });
    expect(feed.subject).toBe(`${prefix}.decisions.reject.${encodeSubjectToken("gpt-4.1 mini")}`);
    expect(decisionSubject(prefix)).toBe(`${prefix}.decisions.*.*`);
    const got = firstValueFrom(feed.pipe(take(2), toArray()));
    await feed.ready();
    await client.admit({ key: "tight", model: "gpt-4.1 mini" }); // admit: not in the feed
    await client.admit({ key: "tight", model: "other" }); // another model
    await client.admit({ key: "tight", model: "gpt-4.1 mini" });
    await client.admit({ key: "tight", model: "gpt-4.1 mini" });
    const evs = await got;
    expect(evs.map((e) => [e.decision, e.reason, e.model, e.key])).toEqual([
      ["reject", "rate_limited", "gpt-4.1 mini", "tight"],
      ["reject", "rate_limited", "gpt-4.1 mini", "tight"],
    ]);
  });

  it("is an async iterable whose NATS subscription closes when the loop ends", async () => {
    const { client } = await setup();
    const subs = () => (h.nc as unknown as { protocol: { subscriptions: { size(): number } } }).protocol.subscriptions.size();
    const before = subs();
    const feed = client.decisions();
    const seen: string[] = [];
    const loop = (async () => {
      for await (const ev of feed) {
        seen.push(`${ev.decision}:${ev.key}`);
        if (seen.length === 2) break;
      }
    })();
    await feed.ready();
    expect(subs()).toBe(before + 1);
    await client.admit({ key: "a", model: "m" });
    await client.admit({ key: "b", model: "m" });
    await loop;
    expect(seen).toEqual(["admit:a", "admit:b"]);
    expect(subs()).toBe(before);

    // return() while a next() is pending ends both at once.
    const it = client.decisions()[Symbol.asyncIterator]();
    const pending = it.next();
    await it.return!();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(subs()).toBe(before);
  });

  it("an Observable subscription closes its NATS subscription on unsubscribe", async () => {
    const { client } = await setup();
    const subs = () => (h.nc as unknown as { protocol: { subscriptions: { size(): number } } }).protocol.subscriptions.size();
    const before = subs();
    const sub = client.decisions({ decision: "admit" }).subscribe(() => {});
    expect(subs()).toBe(before + 1);
    sub.unsubscribe();
    expect(subs()).toBe(before);
  });
});
