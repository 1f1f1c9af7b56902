/**
 * Cost of durability: acknowledged reports per second with the journal on
 * (SLUICE_PERSIST=on: `{ok:true}` only after JetStream's PubAck), beside the
 * same with persistence off (in-memory acks), beside plain publishes of
 * reports (no reply). Every report settles a distinct fresh lease, obtained
 * beforehand (untimed) with `<p>.admit.batch`, so that each one is `applied`.
 *
 * Plain publishes are timed as sluice sees them: N reports published, then one
 * more sent as a request; NATS keeps one connection's messages in order and
 * sluice answers in order, so its ack means the N before it were handled:
 * applied ÷ elapsed, where applied is read from
 * `sluice_reports_total{status="applied"}` on its /metrics. With the journal
 * on, sluice refuses reports past SLUICE_MAX_PENDING_APPENDS (10,000) waiting
 * for JetStream — a published report gets no answer, so it is lost — hence
 * the orchestrator publishes at most {@link MAX_PUBLISH_BURST} per run; the
 * `admitted` column shows the share applied.
 */

/** Reports published per run: below sluice's default SLUICE_MAX_PENDING_APPENDS (10,000). */
export const MAX_PUBLISH_BURST = 9_000;
import { performance } from "node:perf_hooks";
import hdr from "hdr-histogram-js";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { type LoadResult, latencyFigures } from "./result.js";
import { scrape, sumOf } from "./scrape.js";
import type { SluiceTarget } from "./targets.js";

export const DUR_MODEL = "dur-model";
const KEYS = 1000;
const TEAMS = 10;

/** The policy of the durability series' sluices: generous limits, leases that outlive the run, a team budget. */
export function durabilityPolicy(): Record<string, unknown> {
  return {
    leaseTtlMs: 600_000,
    scopes: {
      key: { default: { rpm: 1_000_000_000, tpm: 1_000_000_000_000 } },
      model: { default: { rpm: 1_000_000_000, tpm: 1_000_000_000_000 } },
      team: { default: { budget: { limit: 1_000_000_000, period: "day", calendar: true } } },
    },
  };
}

const enc = new TextEncoder();
let admitSeq = 0;

/** `n` fresh leases from `<p>.admit.batch` (100 per message, 8 in flight). */
export async function obtainLeases(nc: NatsConnection, prefix: string, n: number, timeoutMs: number): Promise<string[]> {
  const leases: string[] = [];
  let asked = 0;
  const worker = async (): Promise<void> => {
    while (asked < n) {
      const size = Math.min(100, n - asked);
      asked += size;
      const body = Array.from({ length: size }, () => {
        const i = admitSeq++;
        return { key: `dk-${i % KEYS}`, model: DUR_MODEL, tokens: 100, cost: 0.001, scopes: { team: `dt-${i % TEAMS}` } };
      });
      const reply = await nc.request(`${prefix}.admit.batch`, enc.encode(JSON.stringify(body)), { timeout: timeoutMs });
      const code = reply.headers?.get("Nats-Service-Error-Code");
      if (code) throw new Error(`${prefix}.admit.batch: error reply ${code}: ${reply.string().slice(0, 200)}`);
      for (const d of reply.json() as { decision?: string; lease?: string }[]) if (d.decision === "admit" && d.lease) leases.push(d.lease);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  if (leases.length < n) throw new Error(`${prefix}: only ${leases.length} of ${n} admissions were admitted`);
  return leases;
}

const reportBody = (lease: string): Uint8Array => enc.encode(JSON.stringify({ lease, outcome: "ok", tokens: 120, cost: 0.0012, latencyMs: 50 }));

function result(mode: LoadResult["mode"], subject: string, concurrency: number, count: number, elapsedMs: number, hist: ReturnType<typeof hdr.build> | undefined, extra: Partial<LoadResult>): LoadResult {
  return {
    mode,
    subject,
    concurrency,
    opsPerRequest: 1,
    durationMs: Math.round(elapsedMs),
    count,
    rps: count / (elapsedMs / 1000),
    ops: count / (elapsedMs / 1000),
    ...latencyFigures(hist, 1000),
    errors: 0,
    timeouts: 0,
    errorReplies: 0,
    ...extra,
  };
}

/** `n` reports sent as requests, `concurrency` in flight; ops = acknowledged reports per second. */
export async function ackedReports(natsUrl: string, target: SluiceTarget, n: number, concurrency: number, timeoutMs: number): Promise<LoadResult> {
  const nc = await connect({ servers: natsUrl, name: `sluice-bench-report-${target.id}-${concurrency}`, maxReconnectAttempts: 0 });
  try {
    const subject = `${target.prefix}.report`;
    const bodies = (await obtainLeases(nc, target.prefix, n, timeoutMs)).map(reportBody);
    const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
    let next = 0;
    let applied = 0;
    let other = 0;
    let errors = 0;
    let timeouts = 0;
    let errorReplies = 0;
    let firstError: string | undefined;
    const worker = async (): Promise<void> => {
      while (next < bodies.length) {
        const body = bodies[next++]!;
        const t0 = performance.now();
        try {
          const reply = await nc.request(subject, body, { timeout: timeoutMs });
          const code = reply.headers?.get("Nats-Service-Error-Code");
          if (code) {
            errorReplies++;
            throw new Error(`error reply ${code}: ${reply.string().slice(0, 200)}`);
          }
          hist.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
          if ((reply.json() as { status?: string }).status === "applied") applied++;
          else other++;
        } catch (err) {
          errors++;
          if (err instanceof Error && /timeout/i.test(`${err.name} ${err.message}`)) timeouts++;
          firstError ??= err instanceof Error ? err.message : String(err);
        }
      }
    };
    const start = performance.now();
    await Promise.all(Array.from({ length: concurrency }, worker));
    const elapsed = performance.now() - start;
    return result("report-ack", subject, concurrency, applied + other, elapsed, hist, {
      errors, timeouts, errorReplies, admitted: applied, rejected: other, ...(firstError !== undefined ? { firstError } : {}),
    });
  } finally {
    await nc.close().catch(() => {});
  }
}

/** `n` reports published (no reply), then one request; ops = reports applied ÷ time to its answer. */
export async function publishedReports(natsUrl: string, target: SluiceTarget, n: number, timeoutMs: number): Promise<LoadResult> {
  if (target.httpUrl === undefined) throw new Error(`${target.id}: started without /metrics`);
  const nc = await connect({ servers: natsUrl, name: `sluice-bench-publish-${target.id}`, maxReconnectAttempts: 0 });
  try {
    const subject = `${target.prefix}.report`;
    const leases = await obtainLeases(nc, target.prefix, n + 1, timeoutMs);
    const bodies = leases.map(reportBody);
    const appliedNow = async (): Promise<number> => sumOf(await scrape(target.httpUrl!), "sluice_reports_total", { status: "applied" });
    const before = await appliedNow();
    const start = performance.now();
    for (let i = 0; i < n; i++) nc.publish(subject, bodies[i]!);
    let firstError: string | undefined;
    let errors = 0;
    try {
      const reply = await nc.request(subject, bodies[n]!, { timeout: Math.max(timeoutMs, 60_000) });
      const code = reply.headers?.get("Nats-Service-Error-Code");
      if (code) throw new Error(`error reply ${code}: ${reply.string().slice(0, 200)}`);
    } catch (err) {
      errors++;
      firstError = err instanceof Error ? err.message : String(err);
    }
    const elapsed = performance.now() - start;
    // Counters are bumped as reports are applied; give the last ones a moment.
    let applied = await appliedNow();
    for (let i = 0; i < 20 && applied - before < n + 1; i++) {
      await new Promise((r) => setTimeout(r, 100));
      applied = await appliedNow();
    }
    const got = applied - before;
    const r = result("report-publish", subject, 1, n + 1, elapsed, undefined, {
      errors, admitted: got, rejected: Math.max(0, n + 1 - got), ...(firstError !== undefined ? { firstError } : {}),
    });
    // What sluice took in: the applied ones (refused ones are lost, published reports get no answer).
    r.ops = r.rps = got / (elapsed / 1000);
    return r;
  } finally {
    await nc.close().catch(() => {});
  }
}
