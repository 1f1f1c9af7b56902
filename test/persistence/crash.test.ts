/**
 * Crash and restart: sluice is killed with SIGKILL under load; after it restarts
 * from its snapshots and journal, every budget's usage is exactly the sum of the
 * acknowledged reports (the unacknowledged ones are resent once it serves again:
 * each counts once, thanks to the journal's message ids and the replayed tombstones).
 */
import { describe, expect, it } from "vitest";
import { useNatsServer } from "../helpers/natsFixture.js";
import { KEYS, expectedUsage, resendUnacked, runSluice, sleep, teamOf, until, usedOf, workload, writePolicy } from "./harness.js";

const nats = useNatsServer({ jetstream: true });

const SCOPES = [...KEYS.map((k) => `key:${k}`), ...new Set(KEYS.map((k) => `team:${teamOf(k)}`))];

describe("durability - kill -9 under load", () => {
  it("keeps every acknowledged report across a crash, and counts resent ones once", { timeout: 90_000 }, async () => {
    const prefix = "crash";
    const env = { NATS_URL: nats.server.url, SLUICE_PREFIX: prefix, SLUICE_POLICY: writePolicy(), SLUICE_SNAPSHOT_MS: "200", SLUICE_PERSIST: "on" };
    const first = runSluice(env);
    await until(() => first.out().includes("sluice is serving"));

    const load = workload(nats.nc, prefix, 16);
    const t0 = Date.now();
    await sleep(2_000);
    const ackedBeforeKill = load.acked;
    const seconds = (Date.now() - t0) / 1000;
    first.child.kill("SIGKILL");
    await first.exit;
    await sleep(200);
    await load.stop();
    console.log(`acknowledged reports before the kill: ${ackedBeforeKill} in ${seconds.toFixed(1)} s (${Math.round(ackedBeforeKill / seconds)}/s, with admits); unacknowledged: ${load.reports.length - load.acked}`);

    const second = runSluice(env);
    await until(() => second.out().includes("sluice is serving"));
    const restoreLine = second.out().split("\n").find((l) => l.includes("journal entries"));
    console.log(restoreLine);
    expect(restoreLine).toBeDefined();

    const resent = await resendUnacked(nats.nc, prefix, load.reports);
    expect(load.reports.every((r) => r.acked)).toBe(true);
    console.log(`resent ${resent} unacknowledged reports`);

    const expected = expectedUsage(load.reports);
    for (const scope of SCOPES) {
      const { used, reserved } = await usedOf(nats.nc, prefix, scope);
      expect({ scope, used }).toEqual({ scope, used: expected.get(scope) ?? 0 });
      expect(reserved).toBe(0);
    }

    // A clean stop writes a final snapshot; a third start restores the same numbers.
    second.child.kill("SIGTERM");
    expect(await second.exit).toBe(0);
    const third = runSluice(env);
    await until(() => third.out().includes("sluice is serving"));
    for (const scope of SCOPES) expect((await usedOf(nats.nc, prefix, scope)).used).toBe(expected.get(scope) ?? 0);
    third.child.kill("SIGTERM");
    expect(await third.exit).toBe(0);
  });
});
