/**
 * nats-server killed (SIGKILL) and restarted on the same store under load: sluice
 * keeps running, answers again once NATS is back (its subscriptions come back with
 * the reconnect), and no acknowledged report is lost. Then a cold replay (no
 * snapshots used) of the whole journal gives the same numbers, and its speed.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsServerHandle, startNatsServer } from "../helpers/natsServer.js";
import { KEYS, expectedUsage, resendUnacked, runSluice, sleep, teamOf, until, usedOf, workload, writePolicy } from "./harness.js";

let server: NatsServerHandle;
let nc: NatsConnection;
beforeAll(async () => {
  server = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
});
afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

const SCOPES = [...KEYS.map((k) => `key:${k}`), ...new Set(KEYS.map((k) => `team:${teamOf(k)}`))];

describe("durability - NATS restart under load", () => {
  it("answers again after nats-server restarts, without restarting itself, and loses nothing acknowledged", { timeout: 120_000 }, async () => {
    const prefix = "natsrestart";
    const policy = writePolicy();
    const env = { NATS_URL: server.url, SLUICE_PREFIX: prefix, SLUICE_POLICY: policy, SLUICE_SNAPSHOT_MS: "200", SLUICE_PERSIST: "on" };
    const sluice = runSluice(env);
    await until(() => sluice.out().includes("sluice is serving"));

    const load = workload(nc, prefix, 16);
    await sleep(1_500);
    const before = load.acked;
    await server.kill();
    await sleep(500);
    await server.restart();
    // Served again by the same process.
    await until(() => load.acked > before + 200, 30_000);
    await sleep(500);
    await load.stop();
    expect(sluice.child.exitCode).toBeNull();
    console.log(`acknowledged ${load.acked} of ${load.reports.length} reports across the NATS restart; ${load.errors} failed requests`);

    await resendUnacked(nc, prefix, load.reports);
    expect(load.reports.every((r) => r.acked)).toBe(true);
    const expected = expectedUsage(load.reports);
    for (const scope of SCOPES) {
      const { used } = await usedOf(nc, prefix, scope);
      expect({ scope, used }).toEqual({ scope, used: expected.get(scope) ?? 0 });
    }
    sluice.child.kill("SIGTERM");
    expect(await sluice.exit).toBe(0);

    // Cold replay: a fresh snapshot bucket, so the whole journal is replayed.
    const cold = runSluice({ ...env, SLUICE_STATE_BUCKET: "COLD_STATE" });
    await until(() => cold.out().includes("sluice is serving"), 60_000);
    console.log(cold.out().split("\n").find((l) => l.includes("journal entries")));
    for (const scope of SCOPES) expect((await usedOf(nc, prefix, scope)).used).toBe(expected.get(scope) ?? 0);
    cold.child.kill("SIGTERM");
    expect(await cold.exit).toBe(0);
  });
});
