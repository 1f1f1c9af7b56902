/**
 * Process harness for the durability tests: `node dist/src/main.js` against a test
 * nats-server with JetStream, and a workload of admissions and reports (sent as
 * requests) that records which reports were acknowledged.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { until as untilShared } from "../helpers/processes.js";

// The built service and the polling helper are shared with the other process tests.
export { runMain as runSluice, type RunningMain as Sluice } from "../helpers/processes.js";

/** Poll `pred` until it holds; durability tests allow 15 s (restore and replay included). */
export const until = (pred: () => boolean, ms = 15_000): Promise<void> => untilShared(pred, ms);

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const KEYS = Array.from({ length: 8 }, (_, i) => `k${i}`);
export const teamOf = (key: string) => `t${Number(key.slice(1)) % 2}`;

/** Every key and team has a budget (large: nothing is refused), keys have the team as parent. */
export function writePolicy(): string {
  const dir = mkdtempSync(join(tmpdir(), "sluice-durable-"));
  const file = join(dir, "policy.json");
  const overrides: Record<string, unknown> = {};
  for (const k of KEYS) overrides[k] = { parents: { team: teamOf(k) }, budget: { limit: 1e9, period: "month", calendar: true } };
  writeFileSync(
    file,
    JSON.stringify({
      scopes: {
        key: { default: { budget: { limit: 1e9, period: "month", calendar: true } }, overrides },
        team: { default: { budget: { limit: 1e9, period: "month", calendar: true } } },
      },
    }),
  );
  return file;
}

export interface SentReport {
  lease: string;
  key: string;
  model: string;
  cost: number;
  acked: boolean;
}

/** Binary-exact costs: their sums do not depend on the order of addition. */
const COSTS = [0.125, 0.25, 0.375];

/**
 * Workers that admit and report (as requests) until stopped. Every report sent is
 * recorded, acknowledged or not; failures (no responders, timeouts) are retried later.
 */
export function workload(nc: NatsConnection, prefix: string, workers = 16) {
  const reports: SentReport[] = [];
  let running = true;
  let errors = 0;
  const worker = async (w: number) => {
    for (let i = 0; running; i++) {
      const key = KEYS[(w + i) % KEYS.length]!;
      let lease: string;
      try {
        const d = (await nc.request(`${prefix}.admit`, JSON.stringify({ key, model: "m", cost: 0.5 }), { timeout: 1_000 })).json<any>();
        if (d.decision !== "admit") throw new Error(JSON.stringify(d));
        lease = d.lease;
      } catch {
        errors++;
        await sleep(50);
        continue;
      }
      const rep: SentReport = { lease, key, model: "m", cost: COSTS[(w + i) % COSTS.length]!, acked: false };
      reports.push(rep);
      try {
        rep.acked = await sendReport(nc, prefix, rep, 2_000);
      } catch {
        errors++;
      }
    }
  };
  const done = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  return {
    reports,
    get errors() {
      return errors;
    },
    get acked() {
      return reports.filter((r) => r.acked).length;
    },
    async stop() {
      running = false;
      await done;
    },
  };
}

/** Send one report as a request; true when answered `{ ok: true }`. */
export async function sendReport(nc: NatsConnection, prefix: string, r: SentReport, timeout: number): Promise<boolean> {
  const m = await nc.request(`${prefix}.report`, JSON.stringify({ lease: r.lease, key: r.key, model: r.model, outcome: "ok", cost: r.cost }), { timeout });
  const body = m.json<any>();
  return body.ok === true;
}

/** Resend every unacknowledged report until each is acknowledged. */
export async function resendUnacked(nc: NatsConnection, prefix: string, reports: SentReport[]): Promise<number> {
  const todo = reports.filter((r) => !r.acked);
  for (let attempt = 0; attempt < 50 && todo.some((r) => !r.acked); attempt++) {
    await Promise.all(
      todo
        .filter((r) => !r.acked)
        .map(async (r) => {
          try {
            r.acked = await sendReport(nc, prefix, r, 3_000);
          } catch {
            /* retried */
          }
        }),
    );
    if (todo.some((r) => !r.acked)) await sleep(200);
  }
  return todo.length;
}

/** Expected budget usage per scope: the sum of the costs reported against it. */
export function expectedUsage(reports: SentReport[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of reports) {
    for (const s of [`key:${r.key}`, `team:${teamOf(r.key)}`]) m.set(s, (m.get(s) ?? 0) + r.cost);
  }
  return m;
}

export async function usedOf(nc: NatsConnection, prefix: string, scope: string): Promise<{ used: number; reserved: number }> {
  const v = (await nc.request(`${prefix}.inspect`, JSON.stringify({ scope }), { timeout: 5_000 })).json<any>();
  if (!v.live) throw new Error(`${scope} not live: ${JSON.stringify(v)}`);
  return { used: v.view.budget.used, reserved: v.view.budget.reserved };
}
