/**
 * `npm run bench`: sluice against a bare NATS echo responder, in one run, on
 * one machine. Starts its own nats-server (no JetStream), the echo responder
 * and sluice as separate processes, then drives each with a separate
 * load-generator process (bench/load.ts) at each in-flight count, repeating
 * each measurement `--runs` times (rounds interleave the targets so that drift
 * of the machine hits both alike). Prints a table of medians with min–max, the
 * goals of the issue (MET / MISSED; speed never fails the command), and writes
 * bench/results/latest.json.
 *
 * Flags:
 *   --duration=ms      measured time per run            (default 5000)
 *   --warmup=ms        unmeasured lead-in per run       (default 1000)
 *   --runs=n           runs per measurement             (default 3)
 *   --prime=ms         one unmeasured load per target before the first run,
 *                      so that scopes exist and the JIT is warm (default 2000)
 *   --concurrency=list in-flight counts                 (default 1,64)
 *   --targets=list     which targets                    (default echo,sluice)
 *   --timeout=ms       request timeout of the generator (default 5000)
 *   --out=file         JSON results                     (default bench/results/latest.json;
 *                                                         bench/results/profile.json with --profile)
 *   --profile          run only sluice at the highest in-flight count under
 *                      `node --cpu-prof` (.tmp/prof/), and print its top
 *                      self-time functions
 *   --verbose          copy the children's stderr to ours
 *
 * Progress goes to stderr; the table and goals to stdout.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type NatsServerProcess, findNatsServerBinary, spawnNatsServerOnFreePort } from "../src/transport/localNats.js";
import type { LoadResult } from "./load.js";
import { BenchChild, ChildFailedError } from "./lib/children.js";
import { FlagError, flagBool, flagInt, flagList, flagString, parseFlags, rejectUnknown } from "./lib/cli.js";
import { type ProfileSummary, summarizeCpuProfile } from "./lib/cpuprofile.js";
import { type GoalResult, type Measurement, evaluateGoals, fmtInt, fmtMs, goalLines, measurementTable, summarize, table } from "./lib/report.js";
import { TARGETS, type Target, type TargetContext } from "./lib/targets.js";
import { DEFAULT_WORKLOAD } from "./lib/workload.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

interface Options {
  durationMs: number;
  warmupMs: number;
  runs: number;
  primeMs: number;
  concurrency: number[];
  targets: string[];
  timeoutMs: number;
  out: string;
  profile: boolean;
  verbose: boolean;
}

function options(argv: string[]): Options {
  const flags = parseFlags(argv, ["profile", "verbose"]);
  rejectUnknown(flags, ["duration", "warmup", "runs", "prime", "concurrency", "targets", "timeout", "out", "profile", "verbose"]);
  const profile = flagBool(flags, "profile");
  const concurrency = flagList(flags, "concurrency", ["1", "64"]).map((c) => {
    const n = Number(c);
    if (!Number.isInteger(n) || n < 1) throw new FlagError(`--concurrency: ${JSON.stringify(c)} is not a positive integer`);
    return n;
  });
  const targets = flagList(flags, "targets", Object.keys(TARGETS));
  for (const t of targets) if (!(t in TARGETS)) throw new FlagError(`--targets: unknown target ${JSON.stringify(t)} (known: ${Object.keys(TARGETS).join(", ")})`);
  return {
    durationMs: flagInt(flags, "duration", 5000, 100),
    warmupMs: flagInt(flags, "warmup", 1000),
    runs: flagInt(flags, "runs", profile ? 1 : 3, 1),
    primeMs: flagInt(flags, "prime", 2000),
    concurrency: profile ? [Math.max(...concurrency)] : concurrency,
    targets: profile ? ["sluice"] : targets,
    timeoutMs: flagInt(flags, "timeout", 5000, 1),
    out: resolve(flagString(flags, "out", join(root, "bench/results", profile ? "profile.json" : "latest.json"))),
    profile,
    verbose: flagBool(flags, "verbose"),
  };
}

const progress = (line: string): void => void process.stderr.write(`bench: ${line}\n`);

// ---------------------------------------------------------------------------------------------
// Everything started here, stopped once, whichever way the run ends.

let nats: NatsServerProcess | undefined;
const started: Target[] = [];
const loads = new Set<BenchChild>();
let workDir: string | undefined;
let cleaning: Promise<void> | undefined;
let interrupted = false;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const l of loads) await l.stop(1000).catch(() => {});
    for (const t of started.reverse()) await t.stop().catch(() => {});
    await nats?.terminate("SIGTERM").catch(() => {});
    if (workDir) await rm(workDir, { recursive: true, force: true }).catch(() => {});
  })();
  return cleaning;
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    interrupted = true;
    progress(`${signal}: stopping`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------

async function runLoad(ctx: TargetContext, target: Target, concurrency: number, durationMs: number, warmupMs: number, timeoutMs: number): Promise<LoadResult> {
  const load = new BenchChild({
    name: "load",
    command: process.execPath,
    args: [
      join(root, "dist/bench/load.js"),
      `--url=${ctx.natsUrl}`,
      `--subject=${target.subject}`,
      `--mode=${target.mode}`,
      `--concurrency=${concurrency}`,
      `--duration=${durationMs}`,
      `--warmup=${warmupMs}`,
      `--timeout=${timeoutMs}`,
    ],
    cwd: root,
    echoStderr: ctx.verbose,
  });
  loads.add(load);
  try {
    const exit = await load.exited;
    target.assertRunning();
    if (exit.code !== 0) throw new ChildFailedError(load, `exited with code ${exit.code} signal ${exit.signal}`);
    const line = load.stdoutText().trim().split("\n").pop() ?? "";
    try {
      return JSON.parse(line) as LoadResult;
    } catch {
      throw new ChildFailedError(load, "printed no JSON result");
    }
  } finally {
    loads.delete(load);
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

function natsServerVersion(binary: string): string {
  const r = spawnSync(binary, ["--version"], { encoding: "utf8", timeout: 5000 });
  return (r.stdout || r.stderr || "").trim();
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

async function main(): Promise<void> {
  const opts = options(process.argv.slice(2));
  for (const f of ["dist/src/main.js", "dist/bench/load.js", "dist/bench/echo.js"]) {
    if (!existsSync(join(root, f))) throw new Error(`${f} is missing: run \`npm run build\` first (npm run bench does)`);
  }
  const binary = findNatsServerBinary();
  if (!binary) throw new Error("nats-server not found (PATH, /usr/sbin, /usr/local/bin); apt-get install nats-server");

  const measured = opts.targets.length * opts.concurrency.length * opts.runs;
  const estimateS = Math.round((opts.targets.length * (opts.primeMs + 1500) + measured * (opts.durationMs + opts.warmupMs + 400)) / 1000);
  progress(
    `${opts.targets.join(", ")} at ${opts.concurrency.join(", ")} in flight, ${opts.runs} × (${opts.warmupMs} ms warmup + ${opts.durationMs} ms); about ${estimateS} s`,
  );

  workDir = await mkdtemp(join(tmpdir(), "sluice-bench-"));
  nats = await spawnNatsServerOnFreePort({ binary, jetstream: false });
  progress(`nats-server ${nats.url} (pid ${nats.pid})`);

  const cpuProfileDir = opts.profile ? join(root, ".tmp/prof") : undefined;
  if (cpuProfileDir) await mkdir(cpuProfileDir, { recursive: true });
  const ctx: TargetContext = { root, natsUrl: nats.url, workDir, verbose: opts.verbose, cpuProfileDir };

  const targets: Target[] = [];
  for (const id of opts.targets) {
    const t = TARGETS[id]!();
    const t0 = Date.now();
    await t.start({ ...ctx, cpuProfileDir: t.profilable ? cpuProfileDir : undefined });
    started.push(t);
    targets.push(t);
    progress(`${id} ready (${Date.now() - t0} ms)`);
  }
  const profileStart = Date.now();

  const maxC = Math.max(...opts.concurrency);
  if (opts.primeMs > 0) {
    for (const t of targets) {
      const r = await runLoad(ctx, t, maxC, opts.primeMs, 0, opts.timeoutMs);
      progress(`primed ${t.id} at ${maxC} in flight for ${opts.primeMs} ms: ${fmtInt(r.ops)} ops/s, ${r.errors} errors`);
    }
  }

  const results = new Map<string, LoadResult[]>();
  const keyOf = (t: string, c: number): string => `${t}@${c}`;
  let n = 0;
  for (let run = 1; run <= opts.runs; run++) {
    for (const t of targets) {
      for (const c of opts.concurrency) {
        const r = await runLoad(ctx, t, c, opts.durationMs, opts.warmupMs, opts.timeoutMs);
        const list = results.get(keyOf(t.id, c)) ?? [];
        list.push(r);
        results.set(keyOf(t.id, c), list);
        n++;
        progress(
          `[${n}/${measured}] ${t.id.padEnd(6)} ${String(c).padStart(3)} in flight, run ${run}/${opts.runs}: ` +
            `${fmtInt(r.ops)} ops/s  p50 ${fmtMs(r.p50)} ms  p99 ${fmtMs(r.p99)} ms  p99.9 ${fmtMs(r.p999)} ms  errors ${r.errors}` +
            (r.admitted !== undefined ? `  admitted ${r.admitted}/${r.admitted + (r.rejected ?? 0)}` : ""),
        );
      }
    }
  }

  const measurements: Measurement[] = [];
  for (const t of targets) for (const c of opts.concurrency) measurements.push(summarize(t.id, c, results.get(keyOf(t.id, c)) ?? []));
  const goals: GoalResult[] = evaluateGoals(measurements);

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
    natsServer: natsServerVersion(binary),
  };
  const header =
    `sluice bench${opts.profile ? " (PROFILED: sluice under --cpu-prof; figures are not comparable)" : ""} — ` +
    `${machine.cpus} CPUs, Node ${machine.node}, ${machine.natsServer}; ` +
    `median of ${opts.runs} run(s) of ${opts.durationMs} ms (after ${opts.warmupMs} ms warmup); ` +
    `${DEFAULT_WORKLOAD.keys} keys, ${DEFAULT_WORKLOAD.models} models, ${DEFAULT_WORKLOAD.teams} teams`;
  const out = [header, "", measurementTable(measurements)];
  if (goals.length > 0) out.push("", goalLines(goals));
  if (profile) out.push("", profileText(profile));
  process.stdout.write(`${out.join("\n")}\n`);

  await mkdir(dirname(opts.out), { recursive: true });
  await writeFile(
    opts.out,
    `${JSON.stringify(
      {
        at: new Date().toISOString(),
        machine,
        options: { ...opts, out: undefined },
        workload: DEFAULT_WORKLOAD,
        targets: targets.map((t) => ({ id: t.id, description: t.description, subject: t.subject, mode: t.mode })),
        measurements,
        goals,
        ...(profile ? { profile } : {}),
      },
      null,
      2,
    )}\n`,
  );
  progress(`wrote ${relative(process.cwd(), opts.out)}`);
}

main()
  .then(() => cleanup())
  .then(() => process.exit(0))
  .catch(async (err) => {
    if (interrupted) return; // the signal handler reports and exits
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    await cleanup();
    process.exit(err instanceof FlagError ? 2 : 1);
  });
