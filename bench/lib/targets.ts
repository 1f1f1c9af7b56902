/**
 * The processes the load generators are pointed at. Each runs in its own
 * process (so that it competes for the machine's cores like a real
 * deployment), is started and awaited until it answers, and is stopped at the
 * end: the echo responder, sluice, and redis-server for the peer. nats-server
 * itself is started by the orchestrator (src/transport/localNats.ts).
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { freePort, isExecutable } from "../../src/transport/localNats.js";
import { BenchChild, ChildFailedError } from "./children.js";
import { benchPolicy } from "./workload.js";

export interface TargetContext {
  /** Repository root (holds dist/). */
  root: string;
  /** The bench's nats-server (undefined when it could not be started). */
  natsUrl?: string;
  /** Private temporary directory of this bench run. */
  workDir: string;
  /** Copy the targets' stderr to ours. */
  verbose: boolean;
  /** Run sluice under `node --cpu-prof`, writing into this directory. */
  cpuProfileDir?: string;
}

/** A process the bench starts once and measures through the load generators. */
export interface Target {
  /** Short name: `echo`, `sluice`, `redis`. */
  readonly id: string;
  /** What it is, for the report. */
  readonly description: string;
  start(ctx: TargetContext): Promise<void>;
  /** Throws if the target's process has died. */
  assertRunning(): void;
  stop(): Promise<void>;
  /** The process, once started. */
  readonly pid: number | undefined;
}

/** Env without the caller's NATS settings, so the children talk to the bench's own server only. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("NATS_") && !k.startsWith("SLUICE_") && !k.startsWith("REDIS_")) env[k] = v;
  return { ...env, ...extra };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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
      await sleep(50);
    }
    throw new ChildFailedError(child, `not ready within ${timeoutMs} ms on ${subject} (${last})`);
  } finally {
    await nc.close();
  }
}

abstract class ChildTarget implements Target {
  abstract readonly id: string;
  abstract readonly description: string;
  protected child?: BenchChild;

  abstract start(ctx: TargetContext): Promise<void>;

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** True while its process runs. */
  get running(): boolean {
    return this.child?.running ?? false;
  }

  assertRunning(): void {
    if (this.child && !this.child.running) throw new ChildFailedError(this.child, "exited during the bench");
  }

  async stop(): Promise<void> {
    await this.child?.stop();
  }
}

const probeBody = new TextEncoder().encode(JSON.stringify({ key: "bench-probe", model: "bench-probe", tokens: 1 }));

function requireNats(ctx: TargetContext): string {
  if (ctx.natsUrl === undefined) throw new Error("no nats-server");
  return ctx.natsUrl;
}

/** A bare NATS echo responder (bench/echo.ts): the floor any NATS service sits on. */
export class EchoTarget extends ChildTarget {
  readonly id = "echo";
  readonly description = "bare NATS echo responder (Node, one connection, queue subscription)";
  readonly subject = "bench.echo";

  async start(ctx: TargetContext): Promise<void> {
    const url = requireNats(ctx);
    this.child = new BenchChild({
      name: "echo",
      command: process.execPath,
      args: [join(ctx.root, "dist/bench/echo.js"), `--url=${url}`, `--subject=${this.subject}`],
      env: cleanEnv(),
      cwd: ctx.root,
      echoStderr: ctx.verbose,
    });
    await waitForResponder(url, this.subject, probeBody, this.child);
  }
}

/** Settings of a {@link SluiceTarget} other than the default one. */
export interface SluiceTargetOptions {
  /** Subject prefix (default `bench`); also names the policy file. */
  prefix?: string;
  /** Policy document (default: {@link benchPolicy}). */
  policy?: Record<string, unknown>;
  /** Extra environment (SLUICE_PERSIST, SLUICE_IDLE_MS, …); default SLUICE_PERSIST=off. */
  env?: Record<string, string>;
  /** Serve /metrics on a free loopback port (SLUICE_HTTP_PORT). */
  http?: boolean;
  /** Name for messages and the report (default `sluice`). */
  id?: string;
  /** Open the inspector on a free loopback port (`--inspect`), for full-GC heap figures (bench/heapprobe.ts). */
  inspect?: boolean;
}

/**
 * sluice itself, `node dist/src/main.js`, with the bench policy. Persistence is
 * off unless the options say otherwise (the bench's nats-server has JetStream,
 * for the durability series, and `auto` would otherwise journal every report).
 */
export class SluiceTarget extends ChildTarget {
  readonly id: string;
  readonly description: string;
  readonly prefix: string;
  /** `http://127.0.0.1:<port>` when started with `http`. */
  httpUrl?: string;
  /** Inspector port when started with `inspect`. */
  inspectPort?: number;

  constructor(private readonly opts: SluiceTargetOptions = {}) {
    super();
    this.id = opts.id ?? "sluice";
    this.prefix = opts.prefix ?? "bench";
    this.description = `sluice (node dist/src/main.js) with ${opts.policy ? "its own" : "the bench"} policy, prefix ${this.prefix}`;
  }

  async start(ctx: TargetContext): Promise<void> {
    const url = requireNats(ctx);
    const policyFile = join(ctx.workDir, `policy-${this.prefix}.json`);
    await writeFile(policyFile, JSON.stringify(this.opts.policy ?? benchPolicy(), null, 2));
    const nodeArgs = ctx.cpuProfileDir && this.opts.id === undefined ? ["--cpu-prof", `--cpu-prof-dir=${ctx.cpuProfileDir}`] : [];
    // As `npm start` runs it: with the default heap ceiling and young generation (SLUICE_MAX_HEAP_MB, SLUICE_SEMI_SPACE_MB).
    nodeArgs.push(`--max-old-space-size=${process.env.SLUICE_MAX_HEAP_MB ?? "1280"}`, `--max-semi-space-size=${process.env.SLUICE_SEMI_SPACE_MB ?? "64"}`);
    if (this.opts.inspect) {
      this.inspectPort = await freePort();
      nodeArgs.push(`--inspect=127.0.0.1:${this.inspectPort}`);
    }
    const extra: Record<string, string> = { SLUICE_PERSIST: "off", ...this.opts.env };
    if (this.opts.http) {
      const port = await freePort();
      extra.SLUICE_HTTP_PORT = String(port);
      this.httpUrl = `http://127.0.0.1:${port}`;
    }
    this.child = new BenchChild({
      name: this.id,
      command: process.execPath,
      args: [...nodeArgs, join(ctx.root, "dist/src/main.js")],
      env: cleanEnv({ NATS_URL: url, SLUICE_PREFIX: this.prefix, SLUICE_POLICY: policyFile, LOG_LEVEL: "warn", ...extra }),
      cwd: ctx.root,
      echoStderr: ctx.verbose,
    });
    await waitForResponder(url, `${this.prefix}.admit`, probeBody, this.child);
  }

  override async stop(): Promise<void> {
    // Graceful (SIGTERM → drain → exit 0), so that --cpu-prof gets to write its profile.
    await this.child?.stop(15_000);
  }
}

/** Where redis-server is: PATH, then the usual package locations. */
export function findRedisServerBinary(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = [...(env.PATH ?? "").split(delimiter).filter((d) => d !== ""), "/usr/bin", "/usr/sbin", "/usr/local/bin"];
  for (const dir of dirs) {
    const file = join(dir, "redis-server");
    if (existsSync(file) && isExecutable(file)) return file;
  }
  return undefined;
}

/** Send one inline command to Redis and read its first reply line. */
async function redisPing(port: number): Promise<string> {
  const { createConnection } = await import("node:net");
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host: "127.0.0.1", port });
    let data = "";
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error("no PONG within 1 s"));
    }, 1000);
    sock.setEncoding("utf8");
    sock.on("connect", () => sock.write("PING\r\n"));
    sock.on("data", (chunk: string) => {
      data += chunk;
      if (data.includes("\r\n")) {
        clearTimeout(timer);
        sock.end();
        resolve(data.split("\r\n")[0]!);
      }
    });
    sock.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * A private redis-server for the peer, on a free loopback port, persisting
 * nothing (`--save "" --appendonly no`), its working directory in the bench's
 * temporary directory.
 */
export class RedisTarget extends ChildTarget {
  readonly id = "redis";
  readonly description: string;
  port = 0;

  constructor(private readonly binary: string) {
    super();
    this.description = `redis-server (${binary}), no persistence, loopback`;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(ctx: TargetContext): Promise<void> {
    this.port = await freePort();
    this.child = new BenchChild({
      name: "redis-server",
      command: this.binary,
      args: [
        "--port", String(this.port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", ctx.workDir,
        "--protected-mode", "yes",
        "--daemonize", "no",
        "--loglevel", "warning",
      ],
      env: cleanEnv(),
      cwd: ctx.workDir,
      echoStderr: ctx.verbose,
    });
    const deadline = Date.now() + 10_000;
    let last = "no answer";
    while (Date.now() < deadline) {
      if (!this.child.running) throw new ChildFailedError(this.child, "exited before it was ready");
      try {
        const reply = await redisPing(this.port);
        if (reply === "+PONG") return;
        last = reply;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      await sleep(50);
    }
    throw new ChildFailedError(this.child, `not ready within 10 s on port ${this.port} (${last})`);
  }
}
