/**
 * The load generator: a separate process that keeps exactly `--concurrency`
 * requests in flight against one subject for `--warmup` + `--duration` ms and
 * prints one JSON line of results (a {@link LoadResult}) on stdout.
 *
 *   node dist/bench/load.js --url=nats://127.0.0.1:4222 --subject=bench.admit \
 *     --mode=admit --concurrency=64 --duration=5000 --warmup=1000
 *
 * Modes: `echo` (the reply is the request, counted as one op), `admit` (the
 * reply is a decision; admits and rejects are counted), `batch` (an
 * `admit.batch` body of `--batch` requests; ops count decisions).
 *
 * Request bodies are built and encoded before the clock starts. Latency is
 * measured from just before `request()` to the reply, recorded in µs in an
 * HDR histogram. A completion counts toward throughput and latency when it
 * lands inside the measurement window (after the warmup).
 */
import { performance } from "node:perf_hooks";
import hdr from "hdr-histogram-js";
import { connect, type Msg } from "@nats-io/transport-node";
import { FlagError, flagInt, flagString, parseFlags, rejectUnknown } from "./lib/cli.js";
import { DEFAULT_WORKLOAD, admitPayloads, batchPayloads } from "./lib/workload.js";

export type LoadMode = "echo" | "admit" | "batch";

/** What one load run prints (times in ms). */
export interface LoadResult {
  mode: LoadMode;
  subject: string;
  concurrency: number;
  /** Decisions (or echoes) per request: the batch size, else 1. */
  opsPerRequest: number;
  durationMs: number;
  /** Successful replies inside the window. */
  count: number;
  /** Requests per second. */
  rps: number;
  /** Decisions (or echoes) per second: rps × opsPerRequest. */
  ops: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
  /** Failed requests inside the window: timeouts + no responders + error replies + other. */
  errors: number;
  timeouts: number;
  errorReplies: number;
  /** admit/batch modes: decisions that were admit / reject. */
  admitted?: number;
  rejected?: number;
}

const admitNeedle = Buffer.from('"decision":"admit"');
const rejectNeedle = Buffer.from('"decision":"reject"');

function occurrences(buf: Buffer, needle: Buffer): number {
  let n = 0;
  for (let at = buf.indexOf(needle); at >= 0; at = buf.indexOf(needle, at + needle.length)) n++;
  return n;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  rejectUnknown(flags, ["url", "subject", "mode", "concurrency", "duration", "warmup", "timeout", "batch", "payloads"]);
  const url = flagString(flags, "url", "nats://127.0.0.1:4222");
  const subject = flagString(flags, "subject");
  if (subject === undefined) throw new FlagError("--subject: required");
  const mode = flagString(flags, "mode", "admit");
  if (mode !== "echo" && mode !== "admit" && mode !== "batch") throw new FlagError(`--mode=${mode}: expected echo, admit or batch`);
  const concurrency = flagInt(flags, "concurrency", 1, 1);
  const durationMs = flagInt(flags, "duration", 5000, 1);
  const warmupMs = flagInt(flags, "warmup", 1000);
  const timeoutMs = flagInt(flags, "timeout", 5000, 1);
  const batch = mode === "batch" ? flagInt(flags, "batch", 10, 1) : 1;
  const payloadCount = flagInt(flags, "payloads", mode === "batch" ? Math.ceil(DEFAULT_WORKLOAD.keys / batch) : DEFAULT_WORKLOAD.keys, 1);

  const payloads = mode === "batch" ? batchPayloads(payloadCount, batch) : admitPayloads(payloadCount);
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });

  const nc = await connect({ servers: url, name: `sluice-bench-load-${mode}-${concurrency}`, maxReconnectAttempts: 0 });

  const countDecisions = mode !== "echo";
  let next = 0;
  let count = 0;
  let errors = 0;
  let timeouts = 0;
  let errorReplies = 0;
  let admitted = 0;
  let rejected = 0;

  const start = performance.now();
  const windowStart = start + warmupMs;
  const windowEnd = windowStart + durationMs;

  const loop = async (): Promise<void> => {
    while (true) {
      const t0 = performance.now();
      if (t0 >= windowEnd) return;
      const payload = payloads[next]!;
      next = next + 1 === payloads.length ? 0 : next + 1;
      let reply: Msg | undefined;
      let failure: unknown;
      try {
        reply = await nc.request(subject, payload, { timeout: timeoutMs });
      } catch (err) {
        failure = err;
      }
      const t1 = performance.now();
      const inWindow = t1 >= windowStart && t1 < windowEnd;
      if (reply !== undefined && reply.headers?.get("Nats-Service-Error-Code")) {
        if (inWindow) {
          errors++;
          errorReplies++;
        }
      } else if (reply !== undefined) {
        if (inWindow) {
          count++;
          hist.recordValue(Math.max(1, Math.round((t1 - t0) * 1000)));
          if (countDecisions) {
            const buf = Buffer.from(reply.data.buffer, reply.data.byteOffset, reply.data.byteLength);
            if (batch === 1) {
              if (buf.indexOf(admitNeedle) >= 0) admitted++;
              else if (buf.indexOf(rejectNeedle) >= 0) rejected++;
            } else {
              admitted += occurrences(buf, admitNeedle);
              rejected += occurrences(buf, rejectNeedle);
            }
          }
        }
      } else {
        if (inWindow) {
          errors++;
          if (failure instanceof Error && /timeout/i.test(`${failure.name} ${failure.message}`)) timeouts++;
        }
        // No responders and the like fail at once: do not spin.
        if (!(failure instanceof Error && /timeout/i.test(`${failure.name} ${failure.message}`))) await sleep(1);
      }
    }
  };

  await Promise.all(Array.from({ length: concurrency }, loop));
  await nc.close();

  const seconds = durationMs / 1000;
  const ms = (us: number): number => Math.round(us) / 1000;
  const result: LoadResult = {
    mode,
    subject,
    concurrency,
    opsPerRequest: batch,
    durationMs,
    count,
    rps: count / seconds,
    ops: (count * batch) / seconds,
    p50: ms(hist.getValueAtPercentile(50)),
    p90: ms(hist.getValueAtPercentile(90)),
    p99: ms(hist.getValueAtPercentile(99)),
    p999: ms(hist.getValueAtPercentile(99.9)),
    max: ms(hist.maxValue),
    mean: ms(hist.mean),
    errors,
    timeouts,
    errorReplies,
    ...(countDecisions ? { admitted, rejected } : {}),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  process.stderr.write(`load: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof FlagError ? 2 : 1);
});
