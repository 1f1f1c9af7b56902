/**
 * The load generator: a separate process that keeps exactly `--concurrency`
 * calls in flight for `--warmup` + `--duration` ms and prints one JSON line of
 * results (a {@link LoadResult}) on stdout.
 *
 *   node dist/bench/load.js --url=nats://127.0.0.1:4222 --subject=bench.admit \
 *     --mode=admit --concurrency=64 --duration=5000 --warmup=1000
 *
 * Modes:
 * - `echo`: a NATS request whose reply is the request; one op.
 * - `admit`: a NATS request to `<p>.admit`; the reply is a decision (admits
 *   and rejects are counted).
 * - `batch`: an `<p>.admit.batch` body of `--batch` requests; ops count decisions.
 * - `client`: `SluiceClient.admit()` of the client package (`--client`, the
 *   built `dist/src/client/mod.js`, loaded with a dynamic import) with
 *   `--prefix` and `--limits` (all, tightest or none: the client's `limits`
 *   option, default all); the client coalesces concurrent calls into `admit.batch`.
 * - `rlf-redis`: the peer, rate-limiter-flexible's `RateLimiterRedis` on an
 *   ioredis client (`--redis`), two `consume` calls per op (bench/lib/peer.ts).
 *
 * Request bodies are built (and for NATS, encoded) before the clock starts.
 * Latency is measured from just before the call to its completion, recorded in
 * µs in an HDR histogram. A completion counts toward throughput and latency
 * when it lands inside the measurement window (after the warmup). The lines
 * `#window start` and `#window end` mark the window on stdout (the orchestrator
 * reads the CPU time of the processes driven then), and the result carries this
 * process's own CPU time in the window.
 */
import { existsSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import hdr from "hdr-histogram-js";
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { FlagError, flagInt, flagString, parseFlags, rejectUnknown } from "./lib/cli.js";
import { peerCheck, peerItems, redisLimiters } from "./lib/peer.js";
import { LOAD_MODES, type LoadMode, type LoadResult, WINDOW_END, WINDOW_START, latencyFigures } from "./lib/result.js";
import { DEFAULT_WORKLOAD, admitBody, admitPayloads, batchPayloads, type AdmitBody } from "./lib/workload.js";

/** Admitted and refused decisions of one call. */
type Tally = readonly [admitted: number, rejected: number];
const ADMIT: Tally = [1, 0];
const REJECT: Tally = [0, 1];
const NEITHER: Tally = [0, 0];

/** A reply that carries sluice's error header. */
class ErrorReply extends Error {
  override readonly name = "ErrorReply";
}

const admitNeedle = Buffer.from('"decision":"admit"');
const rejectNeedle = Buffer.from('"decision":"reject"');

function occurrences(buf: Buffer, needle: Buffer): number {
  let n = 0;
  for (let at = buf.indexOf(needle); at >= 0; at = buf.indexOf(needle, at + needle.length)) n++;
  return n;
}

function replyBuffer(reply: Msg): Buffer {
  const code = reply.headers?.get("Nats-Service-Error-Code");
  if (code) throw new ErrorReply(`error reply ${code}: ${reply.string().slice(0, 200)}`);
  return Buffer.from(reply.data.buffer, reply.data.byteOffset, reply.data.byteLength);
}

/**
 * The generator's NATS connection. `noAsyncTraces`: nats.js otherwise creates two
 * Errors per request (a RequestError and a TimeoutError) for their stack traces,
 * and that was half of this process's CPU under 64 requests in flight
 * (RequestError 34%, TimeoutError 16% of self time; node --cpu-prof of
 * --mode=echo), so that the echo measured the generator, not NATS: 19.5-20.3k
 * requests/s with them, 31.9-37.4k without.
 */
const GENERATOR_CONNECTION = { maxReconnectAttempts: 0, noAsyncTraces: true } as const;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const isTimeout = (err: unknown): boolean => err instanceof Error && /timeout/i.test(`${err.name} ${err.message}`);

/** The shape of the client package this generator relies on (loaded at run time, so absent is fine). */
interface ClientModule {
  SluiceClient: new (nc: NatsConnection, opts: { prefix: string; limits: string }) => { admit(req: AdmitBody): Promise<{ decision: string }> };
}

interface Driver {
  subject: string;
  opsPerRequest: number;
  countDecisions: boolean;
  /** One call; `i` numbers the calls. */
  op(i: number): Promise<Tally>;
  close(): Promise<void>;
}

async function natsDriver(mode: "echo" | "admit" | "batch", url: string, subject: string, concurrency: number, timeoutMs: number, batch: number, payloadCount: number): Promise<Driver> {
  const payloads = mode === "batch" ? batchPayloads(payloadCount, batch) : admitPayloads(payloadCount);
  const nc = await connect({ servers: url, name: `sluice-bench-load-${mode}-${concurrency}`, ...GENERATOR_CONNECTION });
  const n = payloads.length;
  const op =
    mode === "echo"
      ? async (i: number): Promise<Tally> => {
          replyBuffer(await nc.request(subject, payloads[i % n]!, { timeout: timeoutMs }));
          return NEITHER;
        }
      : mode === "admit"
        ? async (i: number): Promise<Tally> => {
            const buf = replyBuffer(await nc.request(subject, payloads[i % n]!, { timeout: timeoutMs }));
            return buf.indexOf(admitNeedle) >= 0 ? ADMIT : buf.indexOf(rejectNeedle) >= 0 ? REJECT : NEITHER;
          }
        : async (i: number): Promise<Tally> => {
            const buf = replyBuffer(await nc.request(subject, payloads[i % n]!, { timeout: timeoutMs }));
            return [occurrences(buf, admitNeedle), occurrences(buf, rejectNeedle)];
          };
  return { subject, opsPerRequest: batch, countDecisions: mode !== "echo", op, close: () => nc.close() };
}

async function clientDriver(url: string, clientPath: string, prefix: string, limits: string, concurrency: number, payloadCount: number): Promise<Driver> {
  if (!existsSync(clientPath)) throw new Error(`--client=${clientPath}: not found (build the client package)`);
  const mod = (await import(pathToFileURL(clientPath).href)) as ClientModule;
  if (typeof mod.SluiceClient !== "function") throw new Error(`${clientPath}: exports no SluiceClient`);
  const nc = await connect({ servers: url, name: `sluice-bench-load-client-${concurrency}`, ...GENERATOR_CONNECTION });
  const client = new mod.SluiceClient(nc, { prefix, limits });
  const bodies = Array.from({ length: payloadCount }, (_, i) => admitBody(i));
  const n = bodies.length;
  return {
    subject: `SluiceClient.admit (prefix ${prefix}, limits ${limits})`,
    opsPerRequest: 1,
    countDecisions: true,
    async op(i) {
      const d = await client.admit(bodies[i % n]!);
      return d.decision === "admit" ? ADMIT : d.decision === "reject" ? REJECT : NEITHER;
    },
    close: () => nc.close(),
  };
}

async function redisDriver(redisUrl: string, payloadCount: number): Promise<Driver> {
  const { Redis } = await import("ioredis");
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  await redis.connect();
  const limiters = redisLimiters(redis);
  const items = peerItems(payloadCount);
  const n = items.length;
  return {
    subject: `RateLimiterRedis ×2 (${redisUrl})`,
    opsPerRequest: 1,
    countDecisions: true,
    async op(i) {
      return (await peerCheck(limiters, items[i % n]!)) ? ADMIT : REJECT;
    },
    close: async () => {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  rejectUnknown(flags, ["url", "subject", "mode", "concurrency", "duration", "warmup", "timeout", "batch", "payloads", "client", "prefix", "limits", "redis"]);
  const url = flagString(flags, "url", "nats://127.0.0.1:4222");
  const mode = flagString(flags, "mode", "admit");
  if (!(LOAD_MODES as readonly string[]).includes(mode)) throw new FlagError(`--mode=${mode}: expected one of ${LOAD_MODES.join(", ")}`);
  const concurrency = flagInt(flags, "concurrency", 1, 1);
  const durationMs = flagInt(flags, "duration", 5000, 1);
  const warmupMs = flagInt(flags, "warmup", 1000);
  const timeoutMs = flagInt(flags, "timeout", 5000, 1);
  const batch = mode === "batch" ? flagInt(flags, "batch", 10, 1) : 1;
  const payloadCount = flagInt(flags, "payloads", mode === "batch" ? Math.ceil(DEFAULT_WORKLOAD.keys / batch) : DEFAULT_WORKLOAD.keys, 1);

  let driver: Driver;
  if (mode === "echo" || mode === "admit" || mode === "batch") {
    const subject = flagString(flags, "subject");
    if (subject === undefined) throw new FlagError("--subject: required");
    driver = await natsDriver(mode, url, subject, concurrency, timeoutMs, batch, payloadCount);
  } else if (mode === "client") {
    const clientPath = flagString(flags, "client");
    if (clientPath === undefined) throw new FlagError("--client: required (path of dist/src/client/mod.js)");
    driver = await clientDriver(url, clientPath, flagString(flags, "prefix", "sluice"), flagString(flags, "limits", "all"), concurrency, payloadCount);
  } else {
    const redisUrl = flagString(flags, "redis");
    if (redisUrl === undefined) throw new FlagError("--redis: required (redis://127.0.0.1:PORT)");
    driver = await redisDriver(redisUrl, payloadCount);
  }

  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let next = 0;
  let count = 0;
  let errors = 0;
  let timeouts = 0;
  let errorReplies = 0;
  let admitted = 0;
  let rejected = 0;
  let firstError: string | undefined;

  const start = performance.now();
  const windowStart = start + warmupMs;
  const windowEnd = windowStart + durationMs;
  // The window's CPU: ours, and (on these lines) the orchestrator reads that of the processes we drive.
  let cpuAtStart: NodeJS.CpuUsage | undefined;
  let cpuInWindow: NodeJS.CpuUsage | undefined;
  const opened = setTimeout(() => {
    cpuAtStart = process.cpuUsage();
    process.stdout.write(`${WINDOW_START}\n`);
  }, warmupMs);
  const closeWindow = (): void => {
    if (!cpuAtStart || cpuInWindow) return;
    cpuInWindow = process.cpuUsage(cpuAtStart);
    process.stdout.write(`${WINDOW_END}\n`);
  };
  const closed = setTimeout(closeWindow, warmupMs + durationMs);

  const loop = async (): Promise<void> => {
    while (true) {
      const t0 = performance.now();
      if (t0 >= windowEnd) return;
      let tally: Tally | undefined;
      let failure: unknown;
      try {
        tally = await driver.op(next++);
      } catch (err) {
        failure = err;
      }
      const t1 = performance.now();
      const inWindow = t1 >= windowStart && t1 < windowEnd;
      if (tally !== undefined) {
        if (inWindow) {
          count++;
          hist.recordValue(Math.max(1, Math.round((t1 - t0) * 1000)));
          admitted += tally[0];
          rejected += tally[1];
        }
        continue;
      }
      firstError ??= failure instanceof Error ? `${failure.name}: ${failure.message}` : String(failure);
      if (inWindow) {
        errors++;
        if (failure instanceof ErrorReply) errorReplies++;
        else if (isTimeout(failure)) timeouts++;
      }
      // No responders, error replies and the like fail at once: do not spin.
      if (!isTimeout(failure)) await sleep(1);
    }
  };

  await Promise.all(Array.from({ length: concurrency }, loop));
  // The last calls end after the window: its timer may not have had its turn yet.
  clearTimeout(opened);
  clearTimeout(closed);
  closeWindow();
  await driver.close();

  const seconds = durationMs / 1000;
  const result: LoadResult = {
    mode: mode as LoadMode,
    subject: driver.subject,
    concurrency,
    opsPerRequest: driver.opsPerRequest,
    durationMs,
    count,
    rps: count / seconds,
    ops: (count * driver.opsPerRequest) / seconds,
    ...latencyFigures(hist, 1000),
    errors,
    timeouts,
    errorReplies,
    ...(driver.countDecisions ? { admitted, rejected } : {}),
    ...(firstError !== undefined ? { firstError } : {}),
    ...(cpuInWindow ? { cpu: { generator: (cpuInWindow.user + cpuInWindow.system) / 1000 } } : {}),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  process.stderr.write(`load: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof FlagError ? 2 : 1);
});
