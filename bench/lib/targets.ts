/**
 * What the load generator is pointed at. Each target runs in its own process
 * (so that it competes for the machine's cores like a real deployment), is
 * started and awaited until it answers, and is stopped at the end.
 *
 * Adding a target (a Redis-backed sluice peer, an in-process core, …) means
 * one more implementation of {@link Target} and one line in `TARGETS`.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import type { LoadMode } from "../load.js";
import { BenchChild, ChildFailedError } from "./children.js";
import { benchPolicy } from "./workload.js";

export interface TargetContext {
  /** Repository root (holds dist/). */
  root: string;
  natsUrl: string;
  /** Private temporary directory of this bench run. */
  workDir: string;
  /** Copy the targets' stderr to ours. */
  verbose: boolean;
  /** Run the target under `node --cpu-prof`, writing into this directory. */
  cpuProfileDir?: string;
}

export interface Target {
  /** Short name used in flags, tables and JSON: `echo`, `sluice`. */
  readonly id: string;
  /** What it is, for the report. */
  readonly description: string;
  /** Subject the load generator requests on. */
  readonly subject: string;
  /** How the load generator builds requests and reads replies. */
  readonly mode: LoadMode;
  /** Whether `cpuProfileDir` applies to it. */
  readonly profilable: boolean;
  start(ctx: TargetContext): Promise<void>;
  /** Throws if the target's process has died. */
  assertRunning(): void;
  stop(): Promise<void>;
}

/** Env without the caller's NATS settings, so the children talk to the bench's own server only. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("NATS_") && !k.startsWith("SLUICE_")) env[k] = v;
  return { ...env, ...extra };
}

/**
 * Request `subject` until something answers without an error header (the
 * responder is subscribed and working), or fail after `timeoutMs` or when the
 * child exits.
 */
export async function waitForResponder(natsUrl: string, subject: string, body: Uint8Array, child: BenchChild, timeoutMs = 20_000): Promise<void> {
  const nc = await connect({ servers: natsUrl, name: "sluice-bench-probe" });
  try {
    const deadline = Date.now() + timeoutMs;
    let last = "no answer";
    while (Date.now() < deadline) {
      if (!child.running) throw new ChildFailedError(child, "exited before it was ready");
      try {
        const m = await nc.request(subject, body, { timeout: 1000 });
        const code = m.headers?.get("Nats-Service-Error-Code");
        if (!code) return;
        last = `error reply ${code}: ${new TextDecoder().decode(m.data)}`;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new ChildFailedError(child, `not ready within ${timeoutMs} ms on ${subject} (${last})`);
  } finally {
    await nc.close();
  }
}

abstract class ChildTarget implements Target {
  abstract readonly id: string;
  abstract readonly description: string;
  abstract readonly subject: string;
  abstract readonly mode: LoadMode;
  abstract readonly profilable: boolean;
  protected child?: BenchChild;

  abstract start(ctx: TargetContext): Promise<void>;

  assertRunning(): void {
    if (this.child && !this.child.running) throw new ChildFailedError(this.child, "exited during the bench");
  }

  async stop(): Promise<void> {
    await this.child?.stop();
  }
}

const probeBody = new TextEncoder().encode(JSON.stringify({ key: "bench-probe", model: "bench-probe", tokens: 1 }));

/** A bare NATS echo responder (bench/echo.ts): the floor any NATS service sits on. */
export class EchoTarget extends ChildTarget {
  readonly id = "echo";
  readonly description = "bare NATS echo responder (Node, one connection, queue subscription)";
  readonly subject = "bench.echo";
  readonly mode = "echo" as const;
  readonly profilable = false;

  async start(ctx: TargetContext): Promise<void> {
    this.child = new BenchChild({
      name: "echo",
      command: process.execPath,
      args: [join(ctx.root, "dist/bench/echo.js"), `--url=${ctx.natsUrl}`, `--subject=${this.subject}`],
      env: cleanEnv({}),
      cwd: ctx.root,
      echoStderr: ctx.verbose,
    });
    await waitForResponder(ctx.natsUrl, this.subject, probeBody, this.child);
  }
}

/** sluice itself, `node dist/src/main.js`, with the bench policy. */
export class SluiceTarget extends ChildTarget {
  readonly id = "sluice";
  readonly description = "sluice (node dist/src/main.js), single admissions on bench.admit";
  readonly prefix = "bench";
  readonly subject = `${this.prefix}.admit`;
  readonly mode = "admit" as const;
  readonly profilable = true;

  async start(ctx: TargetContext): Promise<void> {
    const policyFile = join(ctx.workDir, "policy.json");
    await writeFile(policyFile, JSON.stringify(benchPolicy(), null, 2));
    const nodeArgs = ctx.cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${ctx.cpuProfileDir}`] : [];
    this.child = new BenchChild({
      name: "sluice",
      command: process.execPath,
      args: [...nodeArgs, join(ctx.root, "dist/src/main.js")],
      env: cleanEnv({ NATS_URL: ctx.natsUrl, SLUICE_PREFIX: this.prefix, SLUICE_POLICY: policyFile, LOG_LEVEL: "warn" }),
      cwd: ctx.root,
      echoStderr: ctx.verbose,
    });
    await waitForResponder(ctx.natsUrl, this.subject, probeBody, this.child);
  }

  override async stop(): Promise<void> {
    // Graceful (SIGTERM → drain → exit 0), so that --cpu-prof gets to write its profile.
    await this.child?.stop(15_000);
  }
}

/** Every known target, by id, in the order they are measured. */
export const TARGETS: Record<string, () => Target> = {
  echo: () => new EchoTarget(),
  sluice: () => new SluiceTarget(),
};
