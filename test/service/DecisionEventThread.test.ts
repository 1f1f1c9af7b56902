import { describe, expect, it } from "vitest";
import pino from "pino";
import type { Msg } from "@nats-io/transport-node";
import { DecisionEventThread } from "../../src/service/DecisionEventThread.js";
import type { DecisionEvent } from "../../src/protocol/decision.js";
import { useNatsServer } from "../helpers/natsFixture.js";

const nats = useNatsServer();
const logger = pino({ level: "silent" });

const event = (i: number): DecisionEvent => ({
  ts: 1_000 + i, key: `k${i}`, model: "m", scopes: {}, tokens: i, cost: 0, decision: "admit", reason: "ok", lease: `L-${i}`, delayMs: 0,
});

/** Subscribe to `subject` and collect the bodies of what arrives. */
async function collect(subject: string): Promise<{ bodies: string[]; until: (n: number) => Promise<void> }> {
  const bodies: string[] = [];
  nats.nc.subscribe(subject, {
    callback: (_e: unknown, m: Msg) => {
      bodies.push(m.string());
    },
  });
  await nats.nc.flush();
  const until = async (n: number) => {
    for (let i = 0; i < 200 && bodies.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  };
  return { bodies, until };
}

/** A thread on the test's server whose inline publications are recorded instead of sent. */
async function startRecording(opts: { minTurn: number; maxQueued?: number }): Promise<{ t: DecisionEventThread; inline: string[] }> {
  const inline: string[] = [];
  const t = await DecisionEventThread.start({ servers: [nats.server.url], logger, ...opts, inline: (_s, body) => inline.push(body) });
  return { t, inline };
}

describe("DecisionEventThread", () => {
  it("publishes a busy turn's events from its thread, in order, and a small turn's inline", async () => {
    const { bodies, until } = await collect("t1.decisions.>");
    const { t, inline } = await startRecording({ minTurn: 5 });
    try {
      for (let i = 0; i < 5; i++) t.publish("t1.decisions.admit.m", event(i));
      await until(5);
      expect(bodies).toEqual([0, 1, 2, 3, 4].map((i) => JSON.stringify(event(i))));
      expect(inline).toEqual([]);
      // The thread has nothing pending any more: a turn of two is published inline.
      await new Promise((r) => setTimeout(r, 50));
      t.publish("t1.decisions.admit.m", event(5));
      t.publish("t1.decisions.admit.m", event(6));
      await Promise.resolve();
      expect(inline).toEqual([JSON.stringify(event(5)), JSON.stringify(event(6))]);
    } finally {
      await t.stop();
    }
  });

  it("keeps the order: while the thread has events unpublished, a small turn's go to it too", async () => {
    const { bodies, until } = await collect("t2.decisions.>");
    const { t, inline } = await startRecording({ minTurn: 3 });
    try {
      for (let i = 0; i < 3; i++) t.publish("t2.decisions.admit.m", event(i));
      // The next turn: the first turn's events were handed over, and the thread cannot have answered yet.
      await Promise.resolve();
      t.publish("t2.decisions.admit.m", event(3));
      await until(4);
      expect(bodies).toEqual([0, 1, 2, 3].map((i) => JSON.stringify(event(i))));
      expect(inline).toEqual([]);
    } finally {
      await t.stop();
    }
  });

  it("hands the busy turns of one pass of the event loop over in one message, in order", async () => {
    const { bodies, until } = await collect("t7.decisions.>");
    const { t, inline } = await startRecording({ minTurn: 3 });
    try {
      // Three turns (microtasks apart) in one task, as admit.batch messages decided back to back; the small one follows.
      for (let turn = 0; turn < 3; turn++) {
        const n = turn === 2 ? 1 : 3;
        for (let i = 0; i < n; i++) t.publish("t7.decisions.admit.m", event(turn * 3 + i));
        await Promise.resolve();
      }
      expect(t.handovers).toBe(0);
      await new Promise((r) => setImmediate(r));
      expect(t.handovers).toBe(1);
      // A later pass is a message of its own.
      for (let i = 9; i < 12; i++) t.publish("t7.decisions.admit.m", event(i));
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      expect(t.handovers).toBe(2);
      await until(10);
      expect(bodies).toEqual([0, 1, 2, 3, 4, 5, 6, 9, 10, 11].map((i) => JSON.stringify(event(i))));
      expect(inline).toEqual([]);
    } finally {
      await t.stop();
    }
  });

  it("publishes everything handed over before it stops", async () => {
    const { bodies, until } = await collect("t3.decisions.>");
    const t = await DecisionEventThread.start({ servers: [nats.server.url], logger, minTurn: 1, inline: () => expect.fail("published inline") });
    for (let i = 0; i < 500; i++) t.publish(`t3.decisions.admit.m${i % 3}`, event(i));
    await t.stop();
    await until(500);
    expect(bodies).toHaveLength(500);
    expect(bodies.map((b) => (JSON.parse(b) as DecisionEvent).tokens)).toEqual([...Array(500).keys()]);
    // Stopped: what comes later is published inline.
    const late: string[] = [];
    const t2 = await DecisionEventThread.start({ servers: [nats.server.url], logger, minTurn: 1, inline: (_s, body) => late.push(body) });
    await t2.stop();
    t2.publish("t3.decisions.admit.m", event(1));
    expect(late).toEqual([JSON.stringify(event(1))]);
  });

  it("drops and counts events past maxQueued instead of queueing without bound", async () => {
    const { bodies, until } = await collect("t4.decisions.>");
    const t = await DecisionEventThread.start({ servers: [nats.server.url], logger, minTurn: 1, maxQueued: 5, inline: () => expect.fail("published inline") });
    try {
      for (let i = 0; i < 12; i++) t.publish("t4.decisions.admit.m", event(i));
      expect(t.dropped).toBe(7);
      await until(5);
      await new Promise((r) => setTimeout(r, 50));
      expect(bodies.map((b) => (JSON.parse(b) as DecisionEvent).tokens)).toEqual([0, 1, 2, 3, 4]);
    } finally {
      await t.stop();
    }
  });

  it("publishes inline once its thread is gone", async () => {
    const { t, inline } = await startRecording({ minTurn: 1 });
    const worker = (t as unknown as { worker: import("node:worker_threads").Worker }).worker;
    const exited = new Promise((r) => worker.once("exit", r));
    await worker.terminate();
    await exited;
    t.publish("t5.decisions.admit.m", event(1));
    expect(inline).toEqual([JSON.stringify(event(1))]);
    expect(t.dropped).toBe(0);
    await t.stop();
  });

  it("fails to start, naming the cause, when it cannot connect", async () => {
    await expect(DecisionEventThread.start({ servers: ["127.0.0.1:1"], logger, inline: () => {} })).rejects.toThrow(/decision-event thread: /);
  });
});
