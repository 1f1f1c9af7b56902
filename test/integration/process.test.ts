import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMain as run, until } from "../helpers/processes.js";
import { type NatsServerHandle, startNatsServer } from "../helpers/natsServer.js";

let server: NatsServerHandle;
beforeAll(async () => {
  server = await startNatsServer({ jetstream: false });
});
afterAll(async () => {
  await server?.stop();
});

describe("process - npm start", () => {
  it("serves with a policy file and exits 0 on SIGTERM after draining", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-proc-"));
    const policy = join(dir, "policy.json");
    writeFileSync(policy, JSON.stringify({ scopes: { key: { default: { rpm: 1 } } } }));
    const p = run({ NATS_URL: server.url, SLUICE_POLICY: policy, SLUICE_PREFIX: "proc" });
    await until(() => p.out().includes("sluice is serving"));
    const nc = await connect({ servers: server.url });
    const a = (await nc.request("proc.admit", JSON.stringify({ key: "k", model: "m" }))).json<any>();
    const b = (await nc.request("proc.admit", JSON.stringify({ key: "k", model: "m" }))).json<any>();
    expect([a.decision, b.decision]).toEqual(["admit", "reject"]);
    p.child.kill("SIGTERM");
    expect(await p.exit).toBe(0);
    expect(p.out()).toContain("sluice stopped");
    await nc.close();
  });

  it("publishes every decision event in order, a batch's from its thread, the last ones before it exits", async () => {
    const p = run({ NATS_URL: server.url, SLUICE_PREFIX: "procev" });
    await until(() => p.out().includes("sluice is serving"));
    expect(p.out()).toContain("decision events of busy turns are published from a thread of their own");
    const nc = await connect({ servers: server.url });
    const seen: string[] = [];
    nc.subscribe("procev.decisions.>", {
      callback: (_e, m) => {
        seen.push(m.json<{ key: string }>().key);
      },
    });
    await nc.flush();
    const batch = Array.from({ length: 150 }, (_, i) => ({ key: `b${i}`, model: "m" }));
    expect((await nc.request("procev.admit.batch", JSON.stringify(batch))).json<unknown[]>()).toHaveLength(150);
    await nc.request("procev.admit", JSON.stringify({ key: "lone", model: "m" }));
    // The last batch's events are still with the thread when SIGTERM comes: they are published before exit.
    await nc.request("procev.admit.batch", JSON.stringify(batch.map((r) => ({ ...r, key: `${r.key}-last` }))));
    p.child.kill("SIGTERM");
    expect(await p.exit).toBe(0);
    await until(() => seen.length >= 301);
    expect(seen.slice(0, 151)).toEqual([...batch.map((r) => r.key), "lone"]);
    expect(seen.slice(151)).toEqual(batch.map((r) => `${r.key}-last`));
    await nc.close();
  });

  it("refuses to start beside a sluice already serving the same prefix, exit 1; another prefix starts", async () => {
    const first = run({ NATS_URL: server.url, SLUICE_PREFIX: "dup" });
    await until(() => first.out().includes("sluice is serving"));
    const second = run({ NATS_URL: server.url, SLUICE_PREFIX: "dup" });
    expect(await second.exit).toBe(1);
    expect(second.out()).toMatch(/^sluice: another sluice already serves SLUICE_PREFIX=dup on this NATS \(service \S+\): two would split the requests/m);
    expect(second.out()).not.toContain("sluice is serving");
    const other = run({ NATS_URL: server.url, SLUICE_PREFIX: "dup2" });
    await until(() => other.out().includes("sluice is serving"));
    for (const p of [first, other]) {
      p.child.kill("SIGTERM");
      expect(await p.exit).toBe(0);
    }
  });

  it("SLUICE_STANDBY=on waits beside a running sluice and takes over once it stops; told to stop while waiting, it exits 0", async () => {
    const first = run({ NATS_URL: server.url, SLUICE_PREFIX: "sby" });
    await until(() => first.out().includes("sluice is serving"));
    const standby = run({ NATS_URL: server.url, SLUICE_PREFIX: "sby", SLUICE_STANDBY: "on" });
    const idle = run({ NATS_URL: server.url, SLUICE_PREFIX: "sby", SLUICE_STANDBY: "on" });
    await until(() => standby.out().includes("standby: another sluice serves this prefix") && idle.out().includes("standby: another sluice"));
    idle.child.kill("SIGTERM");
    expect(await idle.exit).toBe(0);
    expect(idle.out()).toContain("standby: stopped before taking over");
    expect(standby.out()).not.toContain("sluice is serving");

    first.child.kill("SIGTERM");
    expect(await first.exit).toBe(0);
    await until(() => standby.out().includes("sluice is serving"));
    expect(standby.out()).toContain("standby: the other sluice has stopped; taking over");
    const nc = await connect({ servers: server.url });
    expect((await nc.request("sby.admit", JSON.stringify({ key: "k", model: "m" }))).json<any>()).toMatchObject({ decision: "admit" });
    await nc.close();
    standby.child.kill("SIGTERM");
    expect(await standby.exit).toBe(0);
  });

  it("refuses an invalid policy file with one line naming the field, exit 2", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-proc-"));
    const policy = join(dir, "policy.json");
    writeFileSync(policy, JSON.stringify({ scopes: { key: { default: { rpm: "fast" } } } }));
    const p = run({ NATS_URL: server.url, SLUICE_POLICY: policy });
    expect(await p.exit).toBe(2);
    expect(p.out().trim()).toBe(`sluice: SLUICE_POLICY=${policy}: policy: scopes.key.default.rpm: expected a positive number`);
  });

  it("refuses a bad environment variable naming it, exit 2", async () => {
    const p = run({ NATS_URL: server.url, LOG_LEVEL: "loud" });
    expect(await p.exit).toBe(2);
    expect(p.out()).toMatch(/^sluice: LOG_LEVEL="loud": /);
  });
});
