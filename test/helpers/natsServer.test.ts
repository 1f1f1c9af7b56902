import { existsSync } from "node:fs";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterEach, describe, expect, it } from "vitest";
import { probeTcp } from "../../src/transport/localNats.js";
import { freePort, startNatsServer, type NatsServerHandle } from "./natsServer.js";

const handles: NatsServerHandle[] = [];
const conns: NatsConnection[] = [];

afterEach(async () => {
  await Promise.all(conns.splice(0).map((nc) => nc.close().catch(() => {})));
  await Promise.all(handles.splice(0).map((h) => h.stop()));
});

async function start(opts?: Parameters<typeof startNatsServer>[0]): Promise<NatsServerHandle> {
  const h = await startNatsServer(opts);
  handles.push(h);
  return h;
}

async function open(url: string): Promise<NatsConnection> {
  const nc = await connect({ servers: url, reconnect: false });
  conns.push(nc);
  return nc;
}

describe("freePort", () => {
  it("returns a port nothing listens on", async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(port).not.toBe(4222);
    expect(await probeTcp("127.0.0.1", port, 200)).toBe(false);
  });
});

describe("startNatsServer", () => {
  it("starts a server on its own port that clients can use, and stop() cleans up", async () => {
    const h = await start();
    expect(h.port).not.toBe(4222);
    expect(h.url).toBe(`nats://127.0.0.1:${h.port}`);
    expect(h.pid).toBeGreaterThan(0);
    expect(existsSync(h.storeDir)).toBe(true);

    const nc = await open(h.url);
    const sub = nc.subscribe("ping", { max: 1 });
    void (async () => {
      for await (const m of sub) m.respond("pong");
    })();
    const reply = await nc.request("ping", "", { timeout: 2000 });
    expect(reply.string()).toBe("pong");
    await nc.close();

    await h.stop();
    expect(await probeTcp("127.0.0.1", h.port, 200)).toBe(false);
    expect(existsSync(h.storeDir)).toBe(false);
  });

  it("kill() keeps the store and restart() comes back on the same port with JetStream state", async () => {
    const h = await start();
    const nc = await open(h.url);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "HELPER_T", subjects: ["helper.t.>"] });
    await jetstream(nc).publish("helper.t.one", "x");
    await nc.close();

    const firstPid = h.pid;
    await h.kill();
    expect(await probeTcp("127.0.0.1", h.port, 200)).toBe(false);
    expect(existsSync(h.storeDir)).toBe(true);

    await h.restart();
    expect(h.pid).not.toBe(firstPid);
    expect(await probeTcp("127.0.0.1", h.port, 200)).toBe(true);
    const nc2 = await open(h.url);
    const info = await (await jetstreamManager(nc2)).streams.info("HELPER_T");
    expect(info.config.subjects).toEqual(["helper.t.>"]);
    expect(info.state.messages).toBe(1);
  });

  it("restart() of a running server terminates it first", async () => {
    const h = await start();
    const firstPid = h.pid;
    await h.restart();
    expect(h.pid).not.toBe(firstPid);
    await (await open(h.url)).flush();
  });

  it("runs without JetStream when asked", async () => {
    const h = await start({ jetstream: false });
    const nc = await open(h.url);
    await expect(jetstreamManager(nc)).rejects.toThrow();
  });

  it("rejects with the server's output when it cannot start", async () => {
    await expect(startNatsServer({ args: ["--no-such-flag"] })).rejects.toThrow(/no-such-flag/);
  });

  it("rejects when the requested port is taken", async () => {
    const h = await start({ jetstream: false });
    await expect(startNatsServer({ port: h.port, jetstream: false })).rejects.toThrow(/address already in use/);
  });
});
