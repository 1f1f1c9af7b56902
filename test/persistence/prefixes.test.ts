/**
 * Two deployments (prefixes) on one NATS server keep their durable state apart:
 * each prefix has its own journal stream and state bucket by default, and a
 * stream named for another prefix is refused at start with a clear message.
 */
import { describe, expect, it } from "vitest";
import { useNatsServer } from "../helpers/natsFixture.js";
import { runSluice, until } from "./harness.js";

const nats = useNatsServer({ jetstream: true });

describe("durability - one NATS server, two prefixes", () => {
  it("a policy set under one prefix is not restored under another, and a shared stream name is refused", { timeout: 60_000 }, async () => {
    const env = (prefix: string, extra: Record<string, string> = {}) => ({ NATS_URL: nats.server.url, SLUICE_PREFIX: prefix, SLUICE_PERSIST: "on", ...extra });
    const a = runSluice(env("alpha"));
    await until(() => a.out().includes("sluice is serving"), 15_000);
    const policy = { scopes: { key: { default: { rpm: 7 } } } };
    expect((await nats.nc.request("alpha.admin.policy.set", JSON.stringify(policy), { timeout: 5_000 })).json()).toEqual({ ok: true });
    a.child.kill("SIGTERM");
    expect(await a.exit).toBe(0);

    const b = runSluice(env("beta"));
    await until(() => b.out().includes("sluice is serving"), 15_000);
    expect(b.out()).not.toContain("using the policy set at run time");
    expect((await nats.nc.request("beta.admin.policy.get", "", { timeout: 2_000 })).json()).toEqual({ scopes: {} });
    b.child.kill("SIGTERM");
    expect(await b.exit).toBe(0);

    // Pointed at alpha's stream: every append would fail, so it does not start.
    const c = runSluice(env("gamma", { SLUICE_JOURNAL_STREAM: "SLUICE_JOURNAL_alpha" }));
    expect(await c.exit).toBe(1);
    expect(c.out()).toContain("journal stream SLUICE_JOURNAL_alpha exists for");
    expect(c.out()).toContain("set SLUICE_JOURNAL_STREAM");
  });
});
