/**
 * `npm run bench`: sluice against the transport's limit and against what users
 * would pick instead, in one run, on one machine.
 *
 * Starts its own nats-server (no JetStream), a bare NATS echo responder, sluice,
 * and — where redis-server is installed — a private redis-server (free port, no
 * persistence) for the peer, rate-limiter-flexible; then measures, each in a
 * separate process (bench/load.ts over the network, bench/inproc.ts in process):
 *
 *   1. the transport ceiling: bare NATS echo at 1, 16, 64, 256 in flight;
 *   2. sluice single admissions (`<p>.admit`) at the same levels, ratio to echo;
 *   3. sluice batches (`<p>.admit.batch`, 100 per message), decisions/s;
 *   4. client auto-batching: `SluiceClient.admit()` at 64 in flight, when the
 *      client package is built (dist/src/client/mod.js), against the peer; the
 *      client asks for the tightest limit only (`limits: "tightest"`);
 *   5. the peer: `RateLimiterRedis` (ioredis), key + model `consume` per request;
 *   6. in process, no NATS: sluice's core (`Admissions.admitMany`, 1 and 32 per
 *      turn) beside a plain-object token bucket and `RateLimiterMemory`;
 *   7. the cost of durability (bench/lib/durability.ts): acknowledged reports/s
 *      at 1 and 64 in flight with SLUICE_PERSIST=on (journal in JetStream) and
 *      =off, and plain publishes of reports, each against a sluice of its own;
 *   8. memory with many keys (bench/lib/memory.ts): 1,000,000 distinct keys
 *      (30,000 with --quick) through a sluice of its own (persistence off,
 *      SLUICE_IDLE_MS=3000): peak RSS (/proc), heap and live actors (its
 *      /metrics), full-GC heap through its inspector (bench/heapprobe.ts),
 *      bytes per live actor and per passivated key. If that sluice dies (out
 *      of memory), the goal is MISSED, everything else is still reported, and
 *      the bench exits 1.
 *
 * For every network run it also reads the CPU time of the process driven, of
 * nats-server and of the generator over the measured window (bench/lib/processCpu.ts),
 * and prints it per op beside the cores they kept busy: whether a series was
 * short of CPU or waiting.
 *
 * The nats-server runs with JetStream (`-js`, store in the temporary
 * directory); every sluice but the durable one runs with SLUICE_PERSIST=off.
 *
 * Each measurement is repeated `--runs` times. A round goes level by level, so
 * that the series a goal compares (sluice and the echo, the client and the peer)
 * run seconds apart and drift of the machine hits them alike; after a run that
 * loaded sluice, one of another target waits for that run's leases to expire
 * (bench/lib/roundOrder.ts). The table shows medians with
 * min–max. Prints ONE table and the goals (MET / MISSED / SKIPPED; speed never
 * fails the command, a crash does), and writes the results as JSON and an SVG
 * chart under bench/results/. Nothing is installed: what cannot run here is
 * listed as skipped, with the reason.
 *
 * Flags:
 *   --quick              CI smoke: 1 and 64 in flight, batches and client at 64,
 *                        1 run, short durations (well under a minute)
 *   --duration=ms        measured time per run over the network (default 3000; quick 800)
 *   --inproc-duration=ms measured time per in-process run     (default 2000; quick 500)
 *   --warmup=ms          unmeasured lead-in per run            (default 1000; quick 200)
 *   --runs=n             runs per measurement                  (default 3; quick 1)
 *   --prime=ms           one unmeasured load per network series before the first
 *                        run, so that scopes exist and the JIT is warm (default 2000; quick 300)
 *   --concurrency=list   in-flight counts                      (default 1,16,64,256; quick 1,64)
 *   --batch-concurrency=list  in-flight counts of the batch series (default: --concurrency; quick 64)
 *   --chunks=list        requests per turn in process          (default 1,32)
 *   --batch=n            requests per admit.batch message      (default 100)
 *   --client-concurrency=n  in-flight count of the client series (default 64)
 *   --targets=list       which series (echo, sluice, batch, client, rlf-redis, core, plain, rlf-memory,
 *                        report-durable, report-memory, publish-durable, publish-memory, memory)
 *   --durability-concurrency=list  in-flight counts of the acked reports (default 1,64)
 *   --durability-reports=n reports per run at the highest in-flight count (default 30000;
 *                        quick 3000); at 1 in flight a tenth of it; published: at most 9000
 *   --memory-keys=n      distinct keys of the memory series (default 1000000; quick 30000)
 *   --memory-concurrency=n  admit.batch messages in flight there (default 8)
 *   --memory-idle=ms     SLUICE_IDLE_MS of its sluice (default 3000; quick 2000)
 *   --memory-tail=ms     longest wait for the keys to be passivated after the drive (default 240000; quick 20000)
 *   --timeout=ms         request timeout of the generators     (default 5000)
 *   --out=file           JSON results (default bench/results/latest.json; quick.json with
 *                        --quick; profile.json with --profile); the chart goes beside it (.svg)
 *   --profile            run only sluice single admissions (or the series of --targets) at the highest in-flight count
 *                        under `node --cpu-prof` (.tmp/prof/), and print its top self-time functions
 *   --verbose            copy the children's stderr to ours
 *
 * Progress goes to stderr (a bar on a terminal, plain lines otherwise); the
 * table and goals to stdout.
 */
import { spawnSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type NatsServerProcess, findNatsServerBinary, spawnNatsServerOnFreePort } from "../src/transport/localNats.js";
import { checkXml, chartSvg } from "./lib/chart.js";
import { WindowCpuReader } from "./lib/processCpu.js";
import { BenchChild, ChildFailedError } from "./lib/children.js";
import { FlagError, flagBool, flagInt, flagList, flagString, parseFlags, rejectUnknown } from "./lib/cli.js";
import { type ProfileSummary, summarizeCpuProfile } from "./lib/cpuprofile.js";
import { Progress } from "./lib/progress.js";
import { type GoalResult, type Measurement, type Skipped, addRatios, cpuTable, evaluateGoals, fmtInt, fmtMs, goalLines, resultsTable, summarize, table } from "./lib/report.js";
import type { LoadResult } from "./lib/result.js";
import { type Need, type Plan, type Series, MEMORY_SERIES_ID, allSeries, durabilitySeries } from "./lib/series.js";
import { EchoTarget, RedisTarget, SluiceTarget, type Target, type TargetContext, cleanEnv, findRedisServerBinary } from "./lib/targets.js";
import { MAX_PUBLISH_BURST, ackedReports, durabilityPolicy, publishedReports } from "./lib/durability.js";
import { type MemoryResult, memoryPolicy, observedPeakRss, runMemorySeries } from "./lib/memory.js";
import { memoryGoal, memoryTable } from "./lib/report.js";
import { type Step, loadsSluice, roundOrder } from "./lib/roundOrder.js";
import { BENCH_LEASE_TTL_MS, DEFAULT_WORKLOAD } from "./lib/workload.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CLIENT_MODULE = join(root, "dist/src/client/mod.js");

interface Options {
  quick: boolean;
  durationMs: number;
  inprocDurationMs: number;
  warmupMs: number;
  runs: number;
  primeMs: number;
  plan: Plan;
  targets: string[] | undefined;
  timeoutMs: number;
  out: string;
  profile: boolean;
  verbose: boolean;
  durabilityLevels: number[];
  durabilityReports: number;
  memoryKeys: number;
  memoryConcurrency: number;
  memoryIdleMs: number;
  memoryTailMs: number;
}

function positiveInts(list: string[], flag: string): number[] {
  return list.map((c) => {
    const n = Number(c);
    if (!Number.isInteger(n) || n < 1) throw new FlagError(`--${flag}: ${JSON.stringify(c)} is not a positive integer`);
    return n;
  });
}

function options(argv: string[]): Options {
  const flags = parseFlags(argv, ["quick", "profile", "verbose"]);
  rejectUnknown(flags, [
    "quick", "duration", "inproc-duration", "warmup", "runs", "prime", "concurrency", "batch-concurrency", "chunks",
    "batch", "client-concurrency", "targets", "timeout", "out", "profile", "verbose",
    "durability-concurrency", "durability-reports", "memory-keys", "memory-concurrency", "memory-idle", "memory-tail",
  ]);
  const quick = flagBool(flags, "quick");
  const profile = flagBool(flags, "profile");
  const levels = positiveInts(flagList(flags, "concurrency", quick ? ["1", "64"] : ["1", "16", "64", "256"]), "concurrency");
  const batchLevels = positiveInts(flagList(flags, "batch-concurrency", quick ? ["64"] : levels.map(String)), "batch-concurrency");
  const plan: Plan = {
    levels: profile ? [Math.max(...levels)] : levels,
    batchLevels,
    chunks: positiveInts(flagList(flags, "chunks", ["1", "32"]), "chunks"),
    batchSize: flagInt(flags, "batch", 100, 1),
    clientLevel: flagInt(flags, "client-concurrency", 64, 1),
  };
  const durabilityLevels = positiveInts(flagList(flags, "durability-concurrency", ["1", "64"]), "durability-concurrency");
  const known = [...allSeries(plan), ...durabilitySeries(durabilityLevels)].map((s) => s.id).concat(MEMORY_SERIES_ID);
  const targets = flags.values.has("targets") ? flagList(flags, "targets", []) : profile ? ["sluice"] : undefined;
  for (const t of targets ?? []) if (!known.includes(t)) throw new FlagError(`--targets: unknown series ${JSON.stringify(t)} (known: ${known.join(", ")})`);
  const defaultOut = profile ? "profile.json" : quick ? "quick.json" : "latest.json";
  return {
    quick,
    durationMs: flagInt(flags, "duration", quick ? 800 : 3000, 100),
    inprocDurationMs: flagInt(flags, "inproc-duration", quick ? 500 : 2000, 100),
    warmupMs: flagInt(flags, "warmup", quick ? 200 : 1000),
    runs: flagInt(flags, "runs", quick || profile ? 1 : 3, 1),
    primeMs: flagInt(flags, "prime", quick ? 300 : 2000),
    plan,
    targets,
    timeoutMs: flagInt(flags, "timeout", 5000, 1),
    out: resolve(flagString(flags, "out", join(root, "bench/results", defaultOut))),
    profile,
    verbose: flagBool(flags, "verbose"),
    durabilityLevels,
    durabilityReports: flagInt(flags, "durability-reports", quick ? 3000 : 30_000, 10),
    memoryKeys: flagInt(flags, "memory-keys", quick ? 30_000 : 1_000_000, 1),
    memoryConcurrency: flagInt(flags, "memory-concurrency", 8, 1),
    memoryIdleMs: flagInt(flags, "memory-idle", quick ? 2000 : 3000, 1),
    memoryTailMs: flagInt(flags, "memory-tail", quick ? 12_000 : 240_000, 0),
  };
}

// ---------------------------------------------------------------------------------------------
// Everything started here, stopped once, whichever way the run ends.

let progress = new Progress(0, 0);
let nats: NatsServerProcess | undefined;
const started: Target[] = [];
const programs = new Set<BenchChild>();
let workDir: string | undefined;
let cleaning: Promise<void> | undefined;
let interrupted = false;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    progress.stop();
    for (const p of programs) await p.stop(1000).catch(() => {});
    for (const t of started.reverse()) await t.stop().catch(() => {});
    await nats?.terminate("SIGTERM").catch(() => {});
    if (workDir) await rm(workDir, { recursive: true, force: true }).catch(() => {});
  })();
  return cleaning;
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    interrupted = true;
    progress.stop();
    process.stderr.write(`bench: ${signal}: stopping\n`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------

interface RunContext {
  ctx: TargetContext;
  /** The bench's nats-server, when it runs. */
  natsPid?: number;
  targets: Map<Need, Target>;
  redisUrl?: string;
  opts: Options;
}

/** Run one series' program at one level; resolves with its result line. */
async function runProgram(rc: RunContext, s: Series, level: number, durationMs: number, warmupMs: number): Promise<LoadResult> {
  const { ctx, opts } = rc;
  const common = [`--duration=${durationMs}`, `--warmup=${warmupMs}`];
  let args: string[];
  if (s.program === "inproc") {
    args = [join(root, "dist/bench/inproc.js"), `--mode=${s.mode}`, `--chunk=${level}`, ...common];
  } else {
    args = [join(root, "dist/bench/load.js"), `--mode=${s.mode}`, `--concurrency=${level}`, `--timeout=${opts.timeoutMs}`, ...common];
    if (s.mode === "echo") args.push(`--url=${ctx.natsUrl}`, `--subject=${(rc.targets.get("echo") as EchoTarget).subject}`);
    if (s.mode === "admit") args.push(`--url=${ctx.natsUrl}`, `--subject=${(rc.targets.get("sluice") as SluiceTarget).prefix}.admit`);
    if (s.mode === "batch") args.push(`--url=${ctx.natsUrl}`, `--subject=${(rc.targets.get("sluice") as SluiceTarget).prefix}.admit.batch`);
    if (s.mode === "client") args.push(`--url=${ctx.natsUrl}`, `--client=${CLIENT_MODULE}`, `--prefix=${(rc.targets.get("sluice") as SluiceTarget).prefix}`);
    if (s.mode === "rlf-redis") args.push(`--redis=${rc.redisUrl}`);
  }
  args.push(...(s.extraArgs ?? []));
  // CPU of the process driven and of nats-server, read as the generator opens and closes its window.
  const driven = (["sluice", "echo", "redis"] as const).find((n) => s.needs.includes(n));
  const pids = { target: driven && rc.targets.get(driven)?.pid, nats: s.needs.includes("nats") ? rc.natsPid : undefined };
  const window = new WindowCpuReader(pids);
  const child = new BenchChild({
    name: `${s.id}@${level}`,
    command: process.execPath,
    args,
    env: cleanEnv(),
    cwd: root,
    echoStderr: ctx.verbose,
    onStdoutLine: (line) => window.mark(line),
  });
  programs.add(child);
  // A generator that hangs (a reply that never comes, a wedged client) must not hang the bench.
  const limitMs = warmupMs + durationMs + opts.timeoutMs + 30_000;
  let timer: NodeJS.Timeout | undefined;
  const overdue = new Promise<"overdue">((r) => (timer = setTimeout(() => r("overdue"), limitMs)));
  try {
    const first = await Promise.race([child.exited, overdue]);
    if (first === "overdue") {
      await child.stop(1000);
      throw new ChildFailedError(child, `did not finish within ${limitMs} ms`);
    }
    for (const need of s.needs) rc.targets.get(need)?.assertRunning();
    if (first.code !== 0) throw new ChildFailedError(child, `exited with code ${first.code} signal ${first.signal}`);
    const line = child.stdoutText().trim().split("\n").pop() ?? "";
    let result: LoadResult;
    try {
      result = JSON.parse(line) as LoadResult;
    } catch {
      throw new ChildFailedError(child, "printed no JSON result");
    }
    if (result.cpu) result.cpu = { ...result.cpu, ...window.used() };
    return result;
  } finally {
    clearTimeout(timer);
    programs.delete(child);
  }
}

async function newestProfile(dir: string, after: number): Promise<string | undefined> {
  let best: { file: string; mtime: number } | undefined;
  for (const name of await readdir(dir)) {
    if (!name.endsWith(".cpuprofile")) continue;
    const file = join(dir, name);
    const { mtimeMs } = await stat(file);
    if (mtimeMs >= after && (!best || mtimeMs > best.mtime)) best = { file, mtime: mtimeMs };
  }
  return best?.file;
}

function versionOf(binary: string): string {
  const r = spawnSync(binary, ["--version"], { encoding: "utf8", timeout: 5000 });
  return (r.stdout || r.stderr || "").trim().split("\n")[0] ?? "";
}

function profileText(p: ProfileSummary): string {
  const pct = (s: number): string => `${(s * 100).toFixed(1)}%`;
  const fnRows = p.functions.map((f) => [f.ms.toFixed(0), pct(f.share), f.name, f.where]);
  const groupRows = p.groups.slice(0, 15).map((g) => [g.ms.toFixed(0), pct(g.share), g.group]);
  return [
    `CPU profile ${relative(root, p.file)}: ${p.totalMs.toFixed(0)} ms sampled, ${p.busyMs.toFixed(0)} ms busy, ${p.idleMs.toFixed(0)} ms idle`,
    "",
    "Self time by function (share of busy time):",
    table(["self ms", "share", "function", "where"], fnRows, new Set([0, 1])),
    "",
    "Self time by package / file:",
    table(["self ms", "share", "group"], groupRows, new Set([0, 1])),
  ].join("\n");
}

const fmtS = (ms: number): string => (ms >= 90_000 ? `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s` : `${Math.round(ms / 1000)} s`);

async function main(): Promise<void> {
  const opts = options(process.argv.slice(2));
  for (const f of ["dist/src/main.js", "dist/bench/load.js", "dist/bench/inproc.js", "dist/bench/echo.js"]) {
    if (!existsSync(join(root, f))) throw new Error(`${f} is missing: run \`npm run build\` first (npm run bench does)`);
  }

  // What can run here; the rest is reported as skipped.
  const natsBinary = findNatsServerBinary();
  const redisBinary = findRedisServerBinary();
  const missing = new Map<Need, string>();
  if (!natsBinary) missing.set("nats", "nats-server not found (PATH, /usr/sbin, /usr/local/bin; apt-get install nats-server)");
  if (!redisBinary) missing.set("redis", "redis-server not installed (the bench installs nothing; apt-get install redis-server)");
  if (!existsSync(CLIENT_MODULE)) missing.set("client", "client package not built (no dist/src/client/mod.js)");

  const isWanted = (id: string): boolean => opts.targets === undefined || opts.targets.includes(id);
  const durWanted = durabilitySeries(opts.durabilityLevels).filter((s) => isWanted(s.id));
  const wanted = [...allSeries(opts.plan).filter((s) => isWanted(s.id)), ...durWanted];
  const skipped: Skipped[] = [];
  const series: Series[] = [];
  const durSeries: Series[] = [];
  for (const s of wanted) {
    const need = s.needs.find((n) => missing.has(n));
    if (need) skipped.push({ series: s.id, label: s.label, section: s.section, reason: missing.get(need)! });
    else (s.program === "durability" ? durSeries : series).push(s);
  }
  let memorySkip: string | undefined;
  if (isWanted(MEMORY_SERIES_ID) && missing.has("nats")) memorySkip = missing.get("nats");
  const runMemory = isWanted(MEMORY_SERIES_ID) && memorySkip === undefined;
  const needs = new Set([...series, ...durSeries].flatMap((s) => s.needs));
  if (runMemory) needs.add("nats");

  // The plan, for the progress bar: planned ms per step.
  const overheadMs = 700;
  const runMs = (s: Series): number => opts.warmupMs + (s.program === "inproc" ? opts.inprocDurationMs : opts.durationMs) + overheadMs;
  const primed = opts.primeMs > 0 ? series.filter((s) => s.prime) : [];
  const measuredSteps = series.reduce((a, s) => a + s.levels.length, 0) * opts.runs;
  const startupMs = 1500 * (1 + (needs.has("echo") ? 1 : 0) + (needs.has("sluice") ? 1 : 0) + (needs.has("redis") ? 1 : 0));
  // Durability: leases + reports at a guessed few thousand reports/s; memory: keys at a guessed 15,000/s plus the tail.
  const durTargets = new Set(durSeries.map((s) => (s.id.endsWith("durable") ? "on" : "off")));
  const durSteps = opts.runs * durSeries.reduce((a, s) => a + s.levels.length, 0);
  const durMs = durSeries.length === 0 ? 0 : durTargets.size * 2500 + durSteps * ((opts.durabilityReports / 5000) * 1000 + 500);
  const memMs = runMemory ? 2500 + (opts.memoryKeys / 15_000) * 1000 + opts.memoryIdleMs + Math.min(opts.memoryTailMs, (opts.memoryKeys / 5000) * 1000) : 0;
  // Leases of a run that loaded sluice expire up to a lifetime after it; the next run's own start and warmup cover part of that.
  const settleMs = Math.max(0, BENCH_LEASE_TTL_MS + 100 - opts.warmupMs);
  const firstRound = roundOrder(series, settleMs);
  const last = firstRound.at(-1);
  const laterRound = roundOrder(series, settleMs, last !== undefined && loadsSluice(last.series));
  const roundMs = (steps: Step[]): number => steps.reduce((a, st) => a + st.pauseMs + runMs(st.series), 0);
  const plannedMs = startupMs + primed.length * (opts.primeMs + overheadMs) + roundMs(firstRound) + (opts.runs - 1) * roundMs(laterRound) + durMs + memMs;
  progress = new Progress(plannedMs, 1 + primed.length + measuredSteps + durSteps + durTargets.size + (runMemory ? 1 : 0));
  progress.log(
    `${opts.quick ? "quick: " : ""}${series.length} series, ${measuredSteps} measured runs ` +
      `(${opts.runs} × ${opts.warmupMs} ms warmup + ${opts.durationMs} ms, in process ${opts.inprocDurationMs} ms); about ${fmtS(plannedMs)}`,
  );
  for (const k of skipped) progress.log(`skipping ${k.label}: ${k.reason}`);
  if (memorySkip) progress.log(`skipping the memory series: ${memorySkip}`);

  workDir = await mkdtemp(join(tmpdir(), "sluice-bench-"));
  const cpuProfileDir = opts.profile ? join(root, ".tmp/prof") : undefined;
  if (cpuProfileDir) await mkdir(cpuProfileDir, { recursive: true });

  progress.begin("starting nats-server, echo, sluice, redis-server", startupMs);
  if (needs.has("nats")) {
    // JetStream for the durability series; its store lives in the temporary directory, removed at the end.
    nats = await spawnNatsServerOnFreePort({ binary: natsBinary!, jetstream: true, storeDir: join(workDir, "jetstream") });
    progress.log(`nats-server ${nats.url} (pid ${nats.pid})`);
  }
  const ctx: TargetContext = { root, natsUrl: nats?.url, workDir, verbose: opts.verbose, cpuProfileDir };
  const targets = new Map<Need, Target>();
  const startTarget = async (need: Need, t: Target): Promise<void> => {
    const t0 = Date.now();
    started.push(t);
    await t.start(ctx);
    targets.set(need, t);
    progress.log(`${t.id} ready (pid ${t.pid}, ${Date.now() - t0} ms)`);
  };
  if (needs.has("echo")) await startTarget("echo", new EchoTarget());
  if (needs.has("sluice")) await startTarget("sluice", new SluiceTarget());
  let redisUrl: string | undefined;
  if (needs.has("redis")) {
    const r = new RedisTarget(redisBinary!);
    await startTarget("redis", r);
    redisUrl = r.url;
  }
  progress.end();
  const profileStart = Date.now();
  const rc: RunContext = { ctx, natsPid: nats?.pid, targets, redisUrl, opts };

  for (const s of primed) {
    const level = Math.max(...s.levels);
    progress.begin(`priming ${s.id} @${level}`, opts.primeMs + overheadMs);
    const r = await runProgram(rc, s, level, opts.primeMs, 0);
    progress.end(`primed ${s.id} at ${level} in flight for ${opts.primeMs} ms: ${fmtInt(r.ops)} ops/s, ${r.errors} errors`);
  }

  const results = new Map<string, LoadResult[]>();
  const keyOf = (s: string, l: number): string => `${s}@${l}`;
  for (let run = 1; run <= opts.runs; run++) {
    for (const { series: s, level, pauseMs } of run === 1 ? firstRound : laterRound) {
      const lv = s.levelKind === "per turn" ? `${level}/turn` : `@${level}`;
      progress.begin(`${s.id} ${lv}, run ${run}/${opts.runs}`, pauseMs + runMs(s));
      if (pauseMs > 0) await sleep(pauseMs);
      const r = await runProgram(rc, s, level, s.program === "inproc" ? opts.inprocDurationMs : opts.durationMs, opts.warmupMs);
      const list = results.get(keyOf(s.id, level)) ?? [];
      list.push(r);
      results.set(keyOf(s.id, level), list);
      progress.end(
        `${s.id.padEnd(10)} ${lv.padStart(7)} run ${run}/${opts.runs}: ${fmtInt(r.ops)} ops/s  p50 ${fmtMs(r.p50)} ms  p99 ${fmtMs(r.p99)} ms  ` +
          `errors ${r.errors}` + (r.admitted !== undefined ? `  admitted ${r.admitted}/${r.admitted + (r.rejected ?? 0)}` : ""),
      );
    }
  }

  // Cost of durability: a sluice with the journal on, one with it off; rounds interleave the two.
  if (durSeries.length > 0) {
    const url = ctx.natsUrl!;
    const durTarget = new Map<"on" | "off", SluiceTarget>();
    for (const mode of ["on", "off"] as const) {
      if (!durTargets.has(mode)) continue;
      const t = new SluiceTarget({
        id: `sluice-persist-${mode}`,
        prefix: `benchdur${mode}`,
        policy: durabilityPolicy(),
        http: true,
        env: mode === "on"
          ? { SLUICE_PERSIST: "on", SLUICE_JOURNAL_STREAM: "BENCH_DUR_JOURNAL", SLUICE_STATE_BUCKET: "BENCH_DUR_STATE" }
          : { SLUICE_PERSIST: "off" },
      });
      progress.begin(`starting ${t.id}, priming`, 2500);
      const t0 = Date.now();
      started.push(t);
      await t.start(ctx);
      durTarget.set(mode, t);
      // Unmeasured: creates the scopes (and the journal's first blocks), warms the JIT.
      await ackedReports(url, t, Math.min(2000, opts.durabilityReports), Math.max(...opts.durabilityLevels), opts.timeoutMs);
      progress.end(`${t.id} ready and primed (pid ${t.pid}, ${Date.now() - t0} ms)`);
    }
    const n1 = Math.max(10, Math.round(opts.durabilityReports / 10));
    for (let run = 1; run <= opts.runs; run++) {
      for (const s of durSeries) {
        const t = durTarget.get(s.id.endsWith("durable") ? "on" : "off")!;
        for (const level of s.levels) {
          const n = s.mode === "report-publish" ? Math.min(opts.durabilityReports, MAX_PUBLISH_BURST) : level > 1 ? opts.durabilityReports : n1;
          const lv = s.levelKind === "no ack" ? "pub" : `@${level}`;
          progress.begin(`${s.id} ${lv}, run ${run}/${opts.runs}`, (n / 5000) * 1000 + 500);
          const r = s.mode === "report-publish" ? await publishedReports(url, t, n, opts.timeoutMs) : await ackedReports(url, t, n, level, opts.timeoutMs);
          t.assertRunning();
          const list = results.get(keyOf(s.id, level)) ?? [];
          list.push(r);
          results.set(keyOf(s.id, level), list);
          progress.end(
            `${s.id.padEnd(15)} ${lv.padStart(4)} run ${run}/${opts.runs}: ${fmtInt(r.ops)} reports/s  p50 ${fmtMs(r.p50)} ms  p99 ${fmtMs(r.p99)} ms  ` +
              `errors ${r.errors}  applied ${r.admitted}/${r.count}`,
          );
        }
      }
    }
    for (const t of durTarget.values()) await t.stop();
  }

  // Memory with many keys: last, alone on the machine.
  let memory: MemoryResult | undefined;
  let memoryFailure: string | undefined;
  if (runMemory) {
    const t = new SluiceTarget({
      id: "sluice-memory",
      prefix: "benchmem",
      policy: memoryPolicy(),
      http: true,
      env: { SLUICE_PERSIST: "off", SLUICE_IDLE_MS: String(opts.memoryIdleMs) },
      inspect: true,
    });
    // Full-GC heap figures through sluice's inspector, by a helper with WebSocket (a flag on Node 20).
    const wsFlag = process.allowedNodeEnvironmentFlags.has("--experimental-websocket") && typeof (globalThis as { WebSocket?: unknown }).WebSocket === "undefined";
    const gcHeap = async (): Promise<number | undefined> => {
      const child = new BenchChild({
        name: "heapprobe",
        command: process.execPath,
        args: [...(wsFlag ? ["--experimental-websocket", "--no-warnings"] : []), join(root, "dist/bench/heapprobe.js"), `--inspect-port=${t.inspectPort}`],
        env: cleanEnv(),
        cwd: root,
        echoStderr: ctx.verbose,
      });
      programs.add(child);
      let timer: NodeJS.Timeout | undefined;
      try {
        const first = await Promise.race([child.exited, new Promise<"late">((r) => (timer = setTimeout(() => r("late"), 120_000)))]);
        if (first === "late") {
          await child.stop(1000);
          throw new ChildFailedError(child, "did not finish within 120 s");
        }
        if (first.code !== 0) throw new ChildFailedError(child, `exited with code ${first.code}`);
        const r = JSON.parse(child.stdoutText().trim().split("\n").pop() ?? "") as { usedSize?: number };
        return typeof r.usedSize === "number" ? r.usedSize : undefined;
      } finally {
        clearTimeout(timer);
        programs.delete(child);
      }
    };
    progress.begin(`memory: ${fmtInt(opts.memoryKeys)} keys`, memMs);
    started.push(t);
    await t.start(ctx);
    const memoryRun = runMemorySeries({
      natsUrl: ctx.natsUrl!,
      target: t,
      keys: opts.memoryKeys,
      admitsPerKey: 2,
      batchSize: opts.plan.batchSize,
      concurrency: opts.memoryConcurrency,
      idleMs: opts.memoryIdleMs,
      tailMaxMs: opts.memoryTailMs,
      timeoutMs: Math.max(opts.timeoutMs, 30_000),
      log: (line) => progress.log(line),
      gcHeap,
    });
    try {
      memory = await memoryRun;
    } catch (err) {
      // Its sluice died (out of memory, most likely): a result, not a reason to lose the others.
      if (t.running || interrupted) throw err;
      memoryFailure = `peak RSS seen ${(observedPeakRss / 2 ** 20).toFixed(0)} MiB, then: ${err instanceof Error ? err.message : String(err)}`;
      progress.log(`memory: FAILED: ${memoryFailure}`);
    }
    await t.stop();
    if (memory) progress.end(
      `memory: ${fmtInt(memory.keys)} keys at ${fmtInt(memory.keysPerSecond)} keys/s; peak RSS ${(memory.peakRssBytes / 2 ** 20).toFixed(0)} MiB, ` +
        `peak heap ${(memory.peakHeapBytes / 2 ** 20).toFixed(0)} MiB, ${fmtInt(memory.liveAfterIdle)} live after idle`,
    );
  }
  progress.stop();

  const allMeasured = [...series, ...durSeries];
  const measurements: Measurement[] = [];
  for (const s of allMeasured) for (const level of s.levels) measurements.push(summarize(s.id, level, results.get(keyOf(s.id, level)) ?? []));
  addRatios(measurements, allMeasured);
  // Nothing answered at all: the setup is broken, not slow.
  const dead = measurements.find((m) => m.count === 0);
  if (dead) throw new Error(`${dead.series} at ${dead.level}: no call succeeded in ${dead.runs.length} run(s)${dead.firstError ? ` (${dead.firstError})` : ""}`);
  const goals: GoalResult[] = opts.profile ? [] : evaluateGoals(measurements, opts.plan, skipped);
  if (!opts.profile && (runMemory || memorySkip)) goals.push(memoryGoal(memory, memorySkip, memoryFailure, opts.memoryKeys));

  let profile: ProfileSummary | undefined;
  if (cpuProfileDir) {
    // The profile is written when sluice exits.
    await cleanup();
    const file = await newestProfile(cpuProfileDir, profileStart - 60_000);
    if (!file) throw new Error(`no .cpuprofile appeared in ${cpuProfileDir}`);
    profile = await summarizeCpuProfile(file, 30);
  }

  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    natsServer: natsBinary ? versionOf(natsBinary) : undefined,
    redisServer: redisBinary && needs.has("redis") ? versionOf(redisBinary) : undefined,
  };
  const runsText = opts.runs >= 3 ? `median of ${opts.runs} runs (min–max)` : `${opts.runs} run(s): no spread, a smoke test`;
  const header = [
    `sluice bench${opts.quick ? " --quick" : ""}${opts.profile ? " (PROFILED: sluice under --cpu-prof; figures are not comparable)" : ""} — ` +
      `${machine.cpus} CPUs, ${machine.memoryGiB} GiB, Node ${machine.node}` +
      (machine.natsServer ? `, ${machine.natsServer}` : "") +
      (machine.redisServer ? `, ${machine.redisServer.replace(/ sha=.*/, "")}` : ""),
    `${runsText}; ${opts.durationMs} ms over the network, ${opts.inprocDurationMs} ms in process, each after ${opts.warmupMs} ms warmup; ` +
      `workload: ${fmtInt(DEFAULT_WORKLOAD.keys)} keys, ${DEFAULT_WORKLOAD.models} models, ${DEFAULT_WORKLOAD.teams} teams (key + model rates, team budget)`,
  ];
  const out = [...header, "", resultsTable(wanted, measurements, skipped)];
  const cpu = cpuTable(wanted, measurements);
  if (cpu !== "") {
    out.push(
      "",
      `CPU per op in the measured window, all threads of each process (/proc; the generator's own from process.cpuUsage; medians of the runs). ` +
        `"driven" is sluice, the echo responder or redis-server; "cores busy" is theirs together, of ${machine.cpus}:`,
      cpu,
    );
  }
  if (memory) out.push("", `Memory with many keys: a sluice of its own (SLUICE_PERSIST=off, SLUICE_IDLE_MS=${memory.idleMs}; keys with rpm 60 and a request budget)`, memoryTable(memory));
  else if (memorySkip) out.push("", `Memory with many keys: skipped: ${memorySkip}`);
  else if (memoryFailure) out.push("", `Memory with many keys: FAILED: ${memoryFailure}`);
  if (goals.length > 0) out.push("", "Goals (speed never fails the bench):", goalLines(goals));
  if (profile) out.push("", profileText(profile));
  process.stdout.write(`${out.join("\n")}\n`);

  const svgFile = join(dirname(opts.out), `${basename(opts.out, ".json")}.svg`);
  const svg = chartSvg({
    title: `sluice bench${opts.quick ? " (--quick)" : ""}: ops/s, ${opts.runs >= 3 ? `median of ${opts.runs} runs, whiskers min–max` : `${opts.runs} run`}`,
    subtitle: `${header[0]!.replace(/^sluice bench[^—]*— /, "")}; ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
    series: allMeasured,
    ms: measurements,
    notes: memory
      ? [
          `${fmtInt(memory.keys)} distinct keys (${memory.admitsPerKey} admissions each) at ${fmtInt(memory.keysPerSecond)} keys/s; SLUICE_IDLE_MS=${memory.idleMs}`,
          `peak RSS (VmHWM) ${(memory.peakRssBytes / 2 ** 20).toFixed(0)} MiB (target <= 1536 MiB); peak heap ${(memory.peakHeapBytes / 2 ** 20).toFixed(0)} MiB with ${fmtInt(memory.liveAtPeakHeap)} live actors`,
          `${fmtInt(memory.bytesPerLiveActor)} bytes per live actor, ${fmtInt(memory.bytesPerPassivatedKey)} bytes per passivated key (${fmtInt(memory.dormantAfterIdle)} passivated, ${fmtInt(memory.liveAfterIdle)} live after idle)`,
        ]
      : [],
  });
  checkXml(svg);

  await mkdir(dirname(opts.out), { recursive: true });
  await writeFile(
    opts.out,
    `${JSON.stringify(
      {
        at: new Date().toISOString(),
        machine,
        options: { ...opts, out: undefined },
        workload: DEFAULT_WORKLOAD,
        series: allMeasured.map(({ id, section, label, unit, mode, levelKind, levels, ratio }) => ({ id, section, label, unit, mode, levelKind, levels, ratio })),
        skipped,
        measurements,
        goals,
        ...(memory ? { memory } : {}),
        ...(memoryFailure ? { memoryFailure } : {}),
        ...(profile ? { profile } : {}),
      },
      null,
      2,
    )}\n`,
  );
  await writeFile(svgFile, svg);
  process.stderr.write(`bench: wrote ${relative(process.cwd(), opts.out)} and ${relative(process.cwd(), svgFile)}\n`);
  if (memoryFailure) throw new Error(`memory series failed (see the table): ${memoryFailure.split("\n")[0]}`);
}

main()
  .then(() => cleanup())
  .then(() => process.exit(0))
  .catch(async (err) => {
    if (interrupted) return; // the signal handler reports and exits
    progress.stop();
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    await cleanup();
    process.exit(err instanceof FlagError ? 2 : 1);
  });
