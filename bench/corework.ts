/**
 * Fixed work through sluice's in-process core on a virtual clock: the cost of one
 * admission in microseconds, for comparing two versions of the core on a noisy
 * machine (the duration-based `core` series of `npm run bench` moves with the
 * machine's load; this does the same work every time and reports the fastest of
 * `--reps` repetitions).
 *
 *   npm run build && node dist/bench/corework.js --chunk=100 --admissions=200000 --reps=5
 *
 * Workload: the bench's (bench/lib/workload.ts: 10,000 keys, 20 models, 50 teams,
 * key and model rates, team budget, 2 s leases, no reports), `--chunk` requests per
 * `admitMany` turn, the clock advancing 0.05 ms per admission (20,000/s), so leases
 * expire inline at the rate they are admitted. No timers: expiry runs as admissions
 * arrive, as it does under load. Prints one JSON line.
 */
import { performance } from "node:perf_hooks";
import { Admissions } from "../src/admission/Admissions.js";
import type { Clock } from "../src/clock.js";
import { parsePolicy } from "../src/protocol/policySchema.js";
import { type AdmitRequest, admitRequestSchema } from "../src/protocol/schemas.js";
import { ScopeRegistry } from "../src/registry/ScopeRegistry.js";
import { FlagError, flagInt, parseFlags, rejectUnknown } from "./lib/cli.js";
import { DEFAULT_WORKLOAD, admitBody, benchPolicy } from "./lib/workload.js";

function main(): void {
  const flags = parseFlags(process.argv.slice(2));
  rejectUnknown(flags, ["chunk", "admissions", "reps", "warmup"]);
  const chunk = flagInt(flags, "chunk", 100, 1);
  const admissions = flagInt(flags, "admissions", 200_000, 1);
  const reps = flagInt(flags, "reps", 5, 1);
  const warmup = flagInt(flags, "warmup", 60_000);

  let t = Date.UTC(2026, 0, 1);
  const clock: Clock = { now: () => t, setTimeout: () => 0, clearTimeout: () => {} };
  const registry = new ScopeRegistry({ policy: parsePolicy(benchPolicy()), clock });
  const core = new Admissions({ registry, clock, random: () => 0.5 });
  const reqs: AdmitRequest[] = Array.from({ length: DEFAULT_WORKLOAD.keys }, (_, i) => admitRequestSchema.parse(admitBody(i)));
  let admitted = 0;
  let rejected = 0;
  let next = 0;
  const run = (n: number): void => {
    for (let i = 0; i < n; i += chunk) {
      const batch: AdmitRequest[] = [];
      for (let j = 0; j < chunk; j++) batch.push(reqs[next++ % reqs.length]!);
      for (const d of core.admitMany(batch)) {
        if (d instanceof Promise || !("decision" in d)) throw new Error("unexpected: a waiting or refused-as-input admission");
        if (d.decision === "admit") admitted++;
        else rejected++;
      }
      t += chunk * 0.05;
    }
  };

  run(warmup);
  const perAdmissionUs: number[] = [];
  for (let r = 0; r < reps; r++) {
    const start = performance.now();
    run(admissions);
    perAdmissionUs.push(((performance.now() - start) * 1000) / admissions);
  }
  const liveActors = registry.size;
  core.close();
  registry.stopAll();
  const round = (x: number) => Math.round(x * 100) / 100;
  process.stdout.write(
    `${JSON.stringify({ chunk, admissions, reps, minUs: round(Math.min(...perAdmissionUs)), runsUs: perAdmissionUs.map(round), admitted, rejected, liveActors })}\n`,
  );
}

try {
  main();
} catch (err) {
  process.stderr.write(`corework: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof FlagError ? 2 : 1);
}
