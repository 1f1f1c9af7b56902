import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { silentLogger } from "../../src/log.js";
import { FramePublisher } from "../../src/transport/FramePublisher.js";
import { type NatsServerHandle, startNatsServer } from "../helpers/natsServer.js";

let server: NatsServerHandle;
let dir: string;
const MAX_PAYLOAD = 1024;

beforeAll(async () => {
  // A small max_payload, so that an oversize body is cheap to make.
  dir = await mkdtemp(join(tmpdir(), "sluice-frames-"));
  const conf = join(dir, "nats.conf");
  await writeFile(conf, `max_payload: ${MAX_PAYLOAD}\n`);
  server = await startNatsServer({ jetstream: false, args: ["-c", conf] });
});
afterAll(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A subscriber on `subject` and a publisher on a connection of its own. */
async function pair(subject: string): Promise<{ pub: NatsConnection; sub: NatsConnection; got: Msg[]; frames: FramePublisher; close(): Promise<void> }> {
  const sub = await connect({ servers: server.url });
  const got: Msg[] = [];
  sub.subscribe(subject, {
    callback: (_e, m) => {
      got.push(m);
    },
  });
  await sub.flush();
  const pub = await connect({ servers: server.url });
  return {
    pub,
    sub,
    got,
    frames: new FramePublisher(pub, silentLogger),
    close: async () => {
      if (!pub.isClosed()) await pub.close();
      await sub.close();
    },
  };
}

async function settle(pub: NatsConnection, sub: NatsConnection): Promise<void> {
  await pub.flush();
  await sub.flush();
}

describe("FramePublisher", () => {
  it("delivers a turn's messages as separate messages, in order, byte for byte, with one hand-over to the client", async () => {
    const p = await pair("fp.a.>");
    const send = vi.spyOn((p.pub as unknown as { protocol: { sendCommand(...a: unknown[]): void } }).protocol, "sendCommand");
    const bodies = ['{"n":1}', "", "ünïcødé → 🚦 and \r\n inside", JSON.stringify({ s: "\ud83d" }), "x".repeat(MAX_PAYLOAD)];
    bodies.forEach((b, i) => p.frames.publish(`fp.a.${i}`, b));
    expect(send).not.toHaveBeenCalled();
    await settle(p.pub, p.sub);
    expect(send.mock.calls.filter(([cmd]) => cmd instanceof Uint8Array && Buffer.from(cmd).toString().startsWith("PUB fp.a."))).toHaveLength(1);
    expect(p.got.map((m) => m.subject)).toEqual(bodies.map((_, i) => `fp.a.${i}`));
    expect(p.got.map((m) => m.string())).toEqual(bodies);
    const stats = p.pub.stats();
    expect(stats.outMsgs).toBe(bodies.length);
    expect(stats.outBytes).toBe(bodies.reduce((n, b) => n + Buffer.byteLength(b), 0));
    await p.close();
  });

  it("writes mid-turn once the turn's frames pass the threshold, then frames the rest for the end of the turn", async () => {
    const p = await pair("fp.w.>");
    const proto = (p.pub as unknown as { protocol: { sendCommand(...a: unknown[]): void; flushPending(): void } }).protocol;
    const frames = new FramePublisher(p.pub, silentLogger, 200);
    const send = vi.spyOn(proto, "sendCommand");
    const write = vi.spyOn(proto, "flushPending");
    const body = "z".repeat(80);
    frames.publish("fp.w.1", body);
    expect(write).not.toHaveBeenCalled();
    frames.publish("fp.w.2", body);
    frames.publish("fp.w.3", body);
    // 3 × (80 + subject + framing) passed 200 bytes: those three were written in this turn.
    expect(send).toHaveBeenCalledTimes(1);
    expect(write).toHaveBeenCalledTimes(1);
    frames.publish("fp.w.4", body);
    expect(send).toHaveBeenCalledTimes(1);
    await settle(p.pub, p.sub);
    expect(p.got.map((m) => m.subject)).toEqual(["fp.w.1", "fp.w.2", "fp.w.3", "fp.w.4"]);
    await p.close();
  });

  it("refuses an oversize body as nats.js does, keeping the connection and the turn's other messages", async () => {
    const p = await pair("fp.b.>");
    p.frames.publish("fp.b.1", "before");
    expect(() => p.frames.publish("fp.b.2", "y".repeat(MAX_PAYLOAD + 1))).toThrow(/max_payload/);
    p.frames.publish("fp.b.3", "after");
    await settle(p.pub, p.sub);
    expect(p.got.map((m) => m.string())).toEqual(["before", "after"]);
    expect(p.pub.isClosed()).toBe(false);
    await p.close();
  });

  it("refuses a subject with white space, and messages on a closed connection, by throwing; a drain sends what it took", async () => {
    const p = await pair("fp.c.>");
    expect(() => p.frames.publish("fp.c.a b", "x")).toThrow();
    p.frames.publish("fp.c.1", "before the drain");
    const drained = p.pub.drain();
    // nats.js still takes messages in the turn a drain begins; so does this, and the drain sends them.
    p.frames.publish("fp.c.2", "as it began");
    await drained;
    expect(() => p.frames.publish("fp.c.3", "x")).toThrow(/closed/i);
    await p.sub.flush();
    expect(p.got.map((m) => m.string())).toEqual(["before the drain", "as it began"]);
    await p.close();
  });

  it("sends what was framed when flushed ahead of a drain", async () => {
    const p = await pair("fp.d.>");
    p.frames.publish("fp.d.1", "one");
    p.frames.publish("fp.d.2", "two");
    p.frames.flush();
    await p.pub.drain();
    await p.sub.flush();
    expect(p.got.map((m) => m.string())).toEqual(["one", "two"]);
    await p.close();
  });

  it("publishes through nc.publish where the client has no protocol handle it knows", () => {
    const publish = vi.fn();
    const nc = { publish, isClosed: () => false } as unknown as NatsConnection;
    const frames = new FramePublisher(nc, silentLogger);
    frames.publish("x.y", "héllo");
    expect(publish).toHaveBeenCalledTimes(1);
    expect(publish.mock.calls[0]![0]).toBe("x.y");
    expect(Buffer.from(publish.mock.calls[0]![1] as Uint8Array).toString()).toBe("héllo");
  });

  it("logs, rather than throws from its microtask, when the client fails to take a turn's frames", async () => {
    const p = await pair("fp.e.>");
    const proto = (p.pub as unknown as { protocol: { sendCommand(...a: unknown[]): void } }).protocol;
    const warn = vi.fn();
    const frames = new FramePublisher(p.pub, { ...silentLogger, warn, debug: () => {} } as unknown as typeof silentLogger);
    const send = vi.spyOn(proto, "sendCommand").mockImplementationOnce(() => {
      throw new Error("boom");
    });
    frames.publish("fp.e.1", "lost");
    await Promise.resolve();
    expect(warn).toHaveBeenCalledTimes(1);
    send.mockRestore();
    frames.publish("fp.e.2", "sent");
    await settle(p.pub, p.sub);
    expect(p.got.map((m) => m.string())).toEqual(["sent"]);
    await p.close();
  });

  it("is one per connection", async () => {
    const nc = await connect({ servers: server.url });
    expect(FramePublisher.of(nc, silentLogger)).toBe(FramePublisher.of(nc, silentLogger));
    await nc.close();
  });
});
