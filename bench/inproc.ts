/**
 * In-process run, no NATS: admissions straight into a limiter in this process,
 * `--chunk` requests per turn of the event loop (as a socket read hands sluice
 * several messages at once), for `--warmup` + `--duration` ms. Prints one JSON
 * line (a {@link LoadResult}; `concurrency` is the chunk, latencies are the time
 * one turn takes).
 *
 *   node dist/bench/inproc.js --mode=core --chunk=32 --duration=3000 --warmup=1000
 *
 * Modes:
 * - `core`: sluice's own core, `Admissions.admitMany` over the `ScopeRegistry`
 *   and its XState scope actors, with the bench policy (key rpm + tpm +
 *   concurrency, model rpm + tpm + concurrency + breaker + adaptive limit,
 *   team budget, leases). Requests are validated (zod) before the clock starts.
 * - `plain`: a plain-object token bucket (bench/lib/plainBucket.ts) doing the
 *   key and model request-rate checks only.
 * - `rlf-memory`: rate-limiter-flexible's `RateLimiterMemory`, the same two
 *   checks (bench/lib/peer.ts); a turn awaits its chunk's checks together.
 *
 * The loop yields to the event loop (setImmediate) every 64 turns, so timers
 * (lease expiry) run as they would in the service.
 */
import { performance } from "node:perf_hooks";
import { setImmediate as yieldTurn } from "node:timers/promises";
import hdr from "hdr-histogram-js";
import { Admissions } from "../src/admission/Admissions.js";
import { systemClock } from "../src/clock.js";
import { SluiceRequestError } from "../src/protocol/errors.js";
import { parsePolicy } from "../src/protocol/policySchema.js";
import { type AdmitRequest, admitRequestSchema } from "../src/protocol/schemas.js";
import { ScopeRegistry } from "../src/registry/ScopeRegistry.js";
import { FlagError, flagInt, flagString, parseFlags, rejectUnknown } from "./lib/cli.js";
import { type PeerItem, memoryLimiters, peerCheck, peerItems } from "./lib/peer.js";
import { PlainBuckets } from "./lib/plainBucket.js";
import { INPROC_MODES, type LoadResult, latencyFigures } from "./lib/result.js";
import { DEFAULT_WORKLOAD, RATES, admitBody, benchPolicy } from "./lib/workload.js";

/** Admitted and refused in one turn. */
interface Tally {
  admitted: number;
  rejected: number;
  errors: number;
}

interface Engine {
  what: string;
  /** Decide chunk number `i`. */
  turn(i: number, tally: Tally): void | Promise<void>;
  close(): void;
}

function chunked<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function coreEngine(count: number, chunk: number): Engine {
  const registry = new ScopeRegistry({ policy: parsePolicy(benchPolicy()), clock: systemClock });
  const admissions = new Admissions({ registry, clock: systemClock });
  const chunks = chunked(
    Array.from({ length: count }, (_, i): AdmitRequest => admitRequestSchema.parse(admitBody(i))),
    chunk,
  );
  const pending: Promise<unknown>[] = [];
  return {
    what: "Admissions.admitMany (ScopeRegistry + scope actors)",
    turn(i, tally) {
      for (const d of admissions.admitMany(chunks[i % chunks.length]!)) {
        if (d instanceof SluiceRequestError) tally.errors++;
        else if (d instanceof Promise) pending.push(d); // not expected: no waitMs, no pacing
        else if (d.decision === "admit") tally.admitted++;
        else tally.rejected++;
      }
      if (pending.length === 0) return;
      return Promise.all(pending.splice(0)).then((ds) => {
        for (const d of ds as { decision: string }[]) {
          if (d.decision === "admit") tally.admitted++;
          else tally.rejected++;
        }
      });
    },
    close() {
      admissions.close();
      registry.stopAll();
    },
  };
}

interface PlainItem {
  names: [string, string];
}

function plainEngine(count: number, chunk: number): Engine {
  const key = { burst: RATES.keyRpm, perMs: RATES.keyRpm / 60_000 };
  const hot = { burst: RATES.hotKeyRpm, perMs: RATES.hotKeyRpm / 60_000 };
  const model = { burst: RATES.modelRpm, perMs: RATES.modelRpm / 60_000 };
  const peers = peerItems(count);
  const hotNames = new Set(peers.filter((p) => p.hot).map((p) => `k:${p.key}`));
  const buckets = new PlainBuckets((name) => (name.startsWith("m:") ? model : hotNames.has(name) ? hot : key));
  const chunks = chunked(
    peers.map((p): PlainItem => ({ names: [`k:${p.key}`, `m:${p.model}`] })),
    chunk,
  );
  return {
    what: "plain-object token buckets (key rpm + model rpm)",
    turn(i, tally) {
      const now = Date.now();
      for (const item of chunks[i % chunks.length]!) {
        if (buckets.tryTake(item.names, 1, now)) tally.admitted++;
        else tally.rejected++;
      }
    },
    close() {},
  };
}

function rlfMemoryEngine(count: number, chunk: number): Engine {
  const limiters = memoryLimiters();
  const chunks = chunked(peerItems(count), chunk);
  const one = (item: PeerItem, tally: Tally): Promise<void> =>
    peerCheck(limiters, item).then((ok) => {
      if (ok) tally.admitted++;
      else tally.rejected++;
    });
  return {
    what: "RateLimiterMemory ×2 (key + model)",
    turn(i, tally) {
      const c = chunks[i % chunks.length]!;
      if (c.length === 1) return one(c[0]!, tally);
      return Promise.all(c.map((item) => one(item, tally))).then(() => {});
    },
    close() {},
  };
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  rejectUnknown(flags, ["mode", "chunk", "duration", "warmup", "payloads"]);
  const mode = flagString(flags, "mode", "core");
  if (!(INPROC_MODES as readonly string[]).includes(mode)) throw new FlagError(`--mode=${mode}: expected one of ${INPROC_MODES.join(", ")}`);
  const chunk = flagInt(flags, "chunk", 1, 1);
  const durationMs = flagInt(flags, "duration", 3000, 1);
  const warmupMs = flagInt(flags, "warmup", 1000);
  // Whole chunks over every key at least once.
  const count = flagInt(flags, "payloads", Math.ceil(DEFAULT_WORKLOAD.keys / chunk) * chunk, 1);

  const engine = mode === "core" ? coreEngine(count, chunk) : mode === "plain" ? plainEngine(count, chunk) : rlfMemoryEngine(count, chunk);
  // Nanoseconds: a turn of the plain bucket takes well under a microsecond.
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: 3 });
  const inWindow: Tally = { admitted: 0, rejected: 0, errors: 0 };
  const scratch: Tally = { admitted: 0, rejected: 0, errors: 0 };
  let turns = 0;
  let turnsInWindow = 0;

  const start = performance.now();
  const windowStart = start + warmupMs;
  const windowEnd = windowStart + durationMs;
  for (let i = 0; ; i++) {
    const t0 = performance.now();
    if (t0 >= windowEnd) break;
    const counting = t0 >= windowStart;
    const tally = counting ? inWindow : scratch;
    const r = engine.turn(i, tally);
    if (r !== undefined) await r;
    const t1 = performance.now();
    if (counting && t1 < windowEnd) {
      turnsInWindow++;
      hist.recordValue(Math.max(1, Math.round((t1 - t0) * 1e6)));
    }
    if (++turns % 64 === 0) await yieldTurn();
  }
  engine.close();

  const seconds = durationMs / 1000;
  const result: LoadResult = {
    mode: mode as LoadResult["mode"],
    subject: engine.what,
    concurrency: chunk,
    opsPerRequest: chunk,
    durationMs,
    count: turnsInWindow,
    rps: turnsInWindow / seconds,
    ops: (inWindow.admitted + inWindow.rejected) / seconds,
    ...latencyFigures(hist, 1e6),
    errors: inWindow.errors,
    timeouts: 0,
    errorReplies: inWindow.errors,
    admitted: inWindow.admitted,
    rejected: inWindow.rejected,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  process.stderr.write(`inproc: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof FlagError ? 2 : 1);
});
