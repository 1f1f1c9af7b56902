/**
 * The README's NATS permissions, read from the README itself: sluice serves with them
 * (persistence on), workers admit and report but cannot reach admin, and a permission
 * taken away makes sluice exit with one line naming it.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import { type NatsServerHandle, startNatsServer } from "../helpers/natsServer.js";
import { type RunningMain, runMain, until } from "../helpers/processes.js";

const ROOT = join(import.meta.dirname, "../..");
const POLICY = join(ROOT, "examples/policy.json");
const PASSWORDS = { sluice: "s3cret-sluice", worker: "s3cret-worker", operator: "s3cret-operator" };

/** The `authorization` block of the README's "NATS permissions", with the passwords filled in. */
function readmeAuthorization(): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## NATS permissions"));
  const block = /```hcl\n([\s\S]*?)```/.exec(section)?.[1];
  if (!block) throw new Error("README: no hcl block under 'NATS permissions'");
  let conf = block;
  for (const [user, pass] of Object.entries(PASSWORDS)) conf = conf.replace(new RegExp(`(user: ${user}, password: )"…"`), `$1"${pass}"`);
  if (conf.includes('"…"')) throw new Error("README: a user of the permissions example is not one this test knows");
  return conf;
}

let server: NatsServerHandle | undefined;
const running: RunningMain[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) p.child.kill("SIGKILL");
  await server?.stop();
  server = undefined;
});

async function serverWith(conf: string): Promise<NatsServerHandle> {
  const file = join(mkdtempSync(join(tmpdir(), "sluice-perm-")), "nats.conf");
  writeFileSync(file, conf);
  server = await startNatsServer({ jetstream: true, args: ["-c", file] });
  return server;
}

function sluice(env: Record<string, string> = {}): RunningMain {
  const p = runMain({ NATS_URL: server!.url, NATS_USER: "sluice", NATS_PASSWORD: PASSWORDS.sluice, SLUICE_POLICY: POLICY, ...env });
  running.push(p);
  return p;
}

describe("NATS permissions, as the README gives them", () => {
  it("sluice serves with persistence and restores; workers admit and report but cannot reach admin; operators can", { timeout: 60_000 }, async () => {
    await serverWith(readmeAuthorization());
    const first = sluice();
    // Logged just after "sluice is serving": waited for, not read at once.
    await until(() => first.out().includes("durable state: journal and snapshots in JetStream"), 20_000);

    const worker = await connect({ servers: server!.url, user: "worker", pass: PASSWORDS.worker });
    const req = async (s: string, b: unknown) => (await worker.request(`sluice.${s}`, JSON.stringify(b), { timeout: 3000 })).json<any>();
    const d = await req("admit", { key: "acme-prod", model: "gpt-4o", cost: 0.5 });
    expect(d.decision).toBe("admit");
    expect(await req("report", { lease: d.lease, outcome: "ok", cost: 0.75 })).toEqual({ ok: true, status: "applied" });
    await expect(worker.request("sluice.admin.policy.get", "{}", { timeout: 2000 })).rejects.toThrow();
    const operator = await connect({ servers: server!.url, user: "operator", pass: PASSWORDS.operator });
    expect((await operator.request("sluice.admin.policy.get", "{}", { timeout: 3000 })).json<any>()).toHaveProperty("scopes");

    // The check for another instance works under these permissions too.
    const twin = sluice();
    expect(await twin.exit).toBe(1);
    expect(twin.out()).toContain("another sluice already serves SLUICE_PREFIX=sluice");

    first.child.kill("SIGTERM");
    expect(await first.exit).toBe(0);
    const again = sluice();
    await until(() => again.out().includes("sluice is serving"), 20_000);
    const view = (await operator.request("sluice.inspect", JSON.stringify({ scope: "key:acme-prod" }), { timeout: 3000 })).json<any>();
    expect(view.context.budgets[0].used).toBe(0.75);
    again.child.kill("SIGTERM");
    expect(await again.exit).toBe(0);
    await worker.close();
    await operator.close();
  });

  it("a permission taken away: sluice exits 1 with one line naming what NATS refused", { timeout: 30_000 }, async () => {
    const narrowed = readmeAuthorization().replace('subscribe: ["sluice.>", "$SRV.>", "_INBOX.>"]', 'subscribe: ["sluice.>", "$SRV.>"]');
    expect(narrowed).not.toBe(readmeAuthorization());
    await serverWith(narrowed);
    const p = sluice();
    expect(await p.exit).toBe(1);
    expect(p.out()).toMatch(/^sluice: NATS refused a permission sluice needs \(subscribe _INBOX\.\S+\): grant it to sluice's NATS user/m);
    expect(p.out()).not.toContain("    at ");
  });

  it("without leave to ask micro discovery, sluice does not start as if alone: one line, exit 1", { timeout: 30_000 }, async () => {
    const narrowed = readmeAuthorization().replace(', "$SRV.INFO.sluice"]', "]");
    expect(narrowed).not.toBe(readmeAuthorization());
    await serverWith(narrowed);
    const p = sluice({ SLUICE_PERSIST: "off" });
    expect(await p.exit).toBe(1);
    expect(p.out()).toMatch(/^sluice: NATS refused a permission sluice needs \(publish \$SRV\.INFO\.sluice\)/m);
  });
});
