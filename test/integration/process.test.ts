import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsServerHandle, startNatsServer } from "../helpers/natsServer.js";

// These run the built service (`npm test` builds first, see the pretest script).
const MAIN = join(import.meta.dirname, "../../dist/src/main.js");

let server: NatsServerHandle;
beforeAll(async () => {
  server = await startNatsServer({ jetstream: false });
});
afterAll(async () => {
  await server?.stop();
});

function run(env: Record<string, string>): { child: ChildProcess; out: () => string; exit: Promise<number | null> } {
  let out = "";
  const child = spawn(process.execPath, [MAIN], { env: { ...process.env, LOG_LEVEL: "info", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, out: () => out, exit };
}

async function until(pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

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
