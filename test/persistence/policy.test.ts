/**
 * A policy set at run time survives a restart while the start policy (SLUICE_POLICY)
 * stays the same; once its file is edited, the file wins and the runtime policy is
 * forgotten (reverting the file does not bring it back).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { useNatsServer } from "../helpers/natsFixture.js";
import { runSluice, until } from "./harness.js";

const nats = useNatsServer({ jetstream: true });

const policy = (rpm: number) => ({ scopes: { key: { default: { rpm } } } });

async function policyInForce(prefix: string): Promise<unknown> {
  return (await nats.nc.request(`${prefix}.admin.policy.get`, "", { timeout: 2_000 })).json();
}

describe("durability - the policy set at run time", () => {
  it("is back after a restart, until the start policy's file is edited", { timeout: 60_000 }, async () => {
    const prefix = "pol";
    const file = join(mkdtempSync(join(tmpdir(), "sluice-policy-")), "policy.json");
    writeFileSync(file, JSON.stringify(policy(60)));
    const env = { NATS_URL: nats.server.url, SLUICE_PREFIX: prefix, SLUICE_POLICY: file, SLUICE_PERSIST: "on" };
    const start = async () => {
      const s = runSluice(env);
      await until(() => s.out().includes("sluice is serving"), 15_000);
      return s;
    };
    const stop = async (s: Awaited<ReturnType<typeof start>>) => {
      s.child.kill("SIGTERM");
      expect(await s.exit).toBe(0);
    };

    const first = await start();
    expect(await policyInForce(prefix)).toEqual(policy(60));
    const ack = (await nats.nc.request(`${prefix}.admin.policy.set`, JSON.stringify(policy(5)), { timeout: 5_000 })).json();
    expect(ack).toEqual({ ok: true });
    expect(await policyInForce(prefix)).toEqual(policy(5));
    await stop(first);

    // Same file: the runtime policy is in force again.
    const second = await start();
    expect(second.out()).toContain("using the policy set at run time");
    expect(await policyInForce(prefix)).toEqual(policy(5));
    await stop(second);

    // The file was edited: it wins.
    writeFileSync(file, JSON.stringify(policy(120)));
    const third = await start();
    expect(third.out()).toContain("the start policy changed");
    expect(await policyInForce(prefix)).toEqual(policy(120));
    await stop(third);

    // Reverted to what it was: the old runtime policy was forgotten, the file is in force.
    writeFileSync(file, JSON.stringify(policy(60)));
    const fourth = await start();
    expect(fourth.out()).not.toContain("using the policy set at run time");
    expect(await policyInForce(prefix)).toEqual(policy(60));
    await stop(fourth);
  });
});
