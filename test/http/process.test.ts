import { existsSync } from "node:fs";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMain as run, until } from "../helpers/processes.js";
import { type NatsServerHandle, freePort, startNatsServer } from "../helpers/natsServer.js";
import { parseMetrics, value } from "./helpers.js";

const BUILT_HTTP = join(import.meta.dirname, "../../dist/src/http/httpServer.js");

let server: NatsServerHandle;
beforeAll(async () => {
  server = await startNatsServer({ jetstream: false });
});
afterAll(async () => {
  await server?.stop();
});

describe("process - SLUICE_HTTP_PORT and SLUICE_INSPECT=nats", () => {
  it("serves metrics, probes and the dashboard, publishes inspection events, and exits 0 on SIGTERM", async () => {
    expect(existsSync(BUILT_HTTP), "dist/src/http is missing: run npm run build first (npm test does)").toBe(true);
    const port = await freePort();
    const p = run({ NATS_URL: server.url, SLUICE_PREFIX: "web", SLUICE_HTTP_PORT: String(port), SLUICE_INSPECT: "nats" });
    await until(() => p.out().includes("dashboard at"));
    const base = `http://127.0.0.1:${port}`;
    expect(p.out()).toContain(`metrics at ${base}/metrics, dashboard at ${base}/`);

    const nc = await connect({ servers: server.url });
    const inspected: any[] = [];
    const sub = nc.subscribe("web.inspect.events.key.k", { callback: (_e, m) => void inspected.push(m.json()) });
    await nc.flush();
    const d = (await nc.request("web.admit", JSON.stringify({ key: "k", model: "m" }))).json<any>();
    expect(d.decision).toBe("admit");

    const m = parseMetrics(await (await fetch(`${base}/metrics`)).text());
    expect(value(m, "sluice_decisions_total", { model: "m", decision: "admit", reason: "ok" })).toBe(1);
    expect(value(m, "sluice_nats_connected")).toBe(1);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${base}/`)).text()).toContain("<title>sluice");
    await until(() => inspected.some((b) => b.type === "@xstate.snapshot"));
    expect(inspected[0]).toMatchObject({ scope: "key:k" });

    sub.unsubscribe();
    p.child.kill("SIGTERM");
    expect(await p.exit).toBe(0);
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
    await nc.close();
  });
});
