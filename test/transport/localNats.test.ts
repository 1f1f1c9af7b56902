import { existsSync } from "node:fs";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger, type Logger } from "../../src/log.js";
import {
  ensureNats,
  findNatsServerBinary,
  NatsServerMissingError,
  NatsServerStartError,
  probeNatsInfo,
  probeTcp,
  spawnNatsServer,
  type LocalNats,
} from "../../src/transport/localNats.js";
import { freePort, startNatsServer, type NatsServerHandle } from "../helpers/natsServer.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function track(local: LocalNats): LocalNats {
  cleanups.push(() => local.stop());
  return local;
}

/** A logger that records its entries. */
function recordingLogger(): { logger: Logger; entries: Array<Record<string, unknown>> } {
  const entries: Array<Record<string, unknown>> = [];
  const logger: Logger = pino(
    { level: "debug" },
    { write: (line: string) => void entries.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, entries };
}

describe("ensureNats", () => {
  it("uses a configured URL as is and starts nothing", async () => {
    const closed = await freePort();
    const local = track(
      await ensureNats({ configured: "nats://nats.example:4222", logger: silentLogger, probePort: closed, binary: "/nonexistent" }),
    );
    expect(local).toMatchObject({ servers: "nats://nats.example:4222", started: false });
    expect(local.storeDir).toBeUndefined();
    await local.stop();
  });

  it("reuses a server that answers on the probe port", async () => {
    const h: NatsServerHandle = await startNatsServer({ jetstream: false });
    cleanups.push(() => h.stop());
    const local = track(await ensureNats({ logger: silentLogger, probePort: h.port, binary: "/nonexistent" }));
    expect(local).toMatchObject({ servers: `nats://127.0.0.1:${h.port}`, started: false });
    const nc = await connect({ servers: local.servers, reconnect: false });
    await nc.flush();
    await nc.close();
    await local.stop();
    expect(await probeTcp("127.0.0.1", h.port, 200)).toBe(true); // not ours to stop
  });

  it("starts a JetStream nats-server when nothing answers, and stop() cleans up", async () => {
    const closed = await freePort();
    const { logger, entries } = recordingLogger();
    const local = track(await ensureNats({ logger, probePort: closed }));
    expect(local.started).toBe(true);
    const url = new URL(local.servers);
    expect(url.protocol).toBe("nats:");
    expect(url.hostname).toBe("127.0.0.1");
    const port = Number(url.port);
    expect(port).not.toBe(4222);
    expect(port).not.toBe(closed);
    expect(local.storeDir && existsSync(local.storeDir)).toBe(true);

    const started = entries.find((e) => e.msg === "started a local nats-server");
    expect(started).toMatchObject({ level: 30, url: local.servers });
    // The child's output reaches the logger at debug.
    expect(entries.some((e) => e.level === 20 && e.component === "nats-server")).toBe(true);

    const nc = await connect({ servers: local.servers, reconnect: false });
    const jsm = await jetstreamManager(nc); // JetStream is on
    expect((await jsm.getAccountInfo()).streams).toBe(0);
    await nc.close();

    await local.stop();
    expect(await probeTcp("127.0.0.1", port, 200)).toBe(false);
    expect(existsSync(local.storeDir!)).toBe(false);
    expect(entries.some((e) => e.msg === "the local nats-server exited unexpectedly")).toBe(false);
    await local.stop(); // idempotent
  });

  it("rejects with NatsServerMissingError when nothing answers and there is no binary", async () => {
    const closed = await freePort();
    const err = await ensureNats({ logger: silentLogger, probePort: closed, binary: "/nonexistent" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NatsServerMissingError);
    const message = (err as Error).message;
    expect(message).toContain(`127.0.0.1:${closed}`);
    expect(message).toContain("apt-get install nats-server");
    expect(message).toContain("docker compose up nats");
    expect(message).toContain("NATS_URL");
    expect(message).not.toContain("\n");
  });

  it("logs at error when the server it started dies on its own", async () => {
    const { logger, entries } = recordingLogger();
    const local = track(await ensureNats({ logger, probePort: await freePort() }));
    process.kill(local.pid!, "SIGKILL");
    await expect.poll(() => entries.find((e) => e.msg === "the local nats-server exited unexpectedly")).toMatchObject({
      level: 50,
      signal: "SIGKILL",
    });
    await local.stop(); // still removes the store
    expect(existsSync(local.storeDir!)).toBe(false);
  });
});

describe("spawnNatsServer", () => {
  it("rejects with the server's output when it dies before it is ready", async () => {
    const binary = findNatsServerBinary();
    expect(binary).toBeDefined();
    const err = await spawnNatsServer({ binary: binary!, port: await freePort(), args: ["--no-such-flag"] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NatsServerStartError);
    expect((err as Error).message).toMatch(/exited before it was ready[\s\S]*no-such-flag/);
  });

  it("rejects when the binary cannot be spawned", async () => {
    await expect(spawnNatsServer({ binary: "/nonexistent/nats-server", port: await freePort() })).rejects.toThrow(
      /could not start.*ENOENT/,
    );
  });
});

describe("probeNatsInfo", () => {
  it("reads the INFO of a NATS server and nothing from a closed port", async () => {
    const h = await startNatsServer({ jetstream: false });
    cleanups.push(() => h.stop());
    const info = await probeNatsInfo("127.0.0.1", h.port);
    expect(info?.port).toBe(h.port);
    expect(await probeNatsInfo("127.0.0.1", await freePort(), 200)).toBeUndefined();
  });
});
