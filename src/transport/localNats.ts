/**
 * Finding or starting a NATS server for `npm start` and for the integration tests.
 *
 * `ensureNats` is what the service calls at boot: it uses `NATS_URL` when set, else a server
 * already listening on 127.0.0.1:4222, else it starts a private `nats-server` (JetStream on,
 * store in a temporary directory) on a free port. The lower-level pieces (binary lookup, TCP
 * probe, free port, spawn-and-wait-until-ready) are exported for the test helper.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { accessSync, constants as fsConstants, rmSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { connect as netConnect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import type { Logger } from "../log.js";

/** Host and port probed when `NATS_URL` is not set. */
export const DEFAULT_PROBE_HOST = "127.0.0.1";
/** Host and port probed when `NATS_URL` is not set. */
export const DEFAULT_PROBE_PORT = 4222;

/** Directories searched after `PATH` for the `nats-server` binary (the Debian package installs into /usr/sbin). */
export const NATS_SERVER_FALLBACK_DIRS: readonly string[] = ["/usr/sbin", "/usr/local/bin"];

/** Thrown by {@link ensureNats} when nothing answers on the probe address and no `nats-server` binary can be found. */
export class NatsServerMissingError extends Error {
  override readonly name = "NatsServerMissingError";
  /** @param probed the `host:port` that was probed, for the message. */
  constructor(probed = `${DEFAULT_PROBE_HOST}:${DEFAULT_PROBE_PORT}`) {
    super(
      `no NATS server reachable at ${probed} and no nats-server binary found; ` +
        "install Debian/Ubuntu package `nats-server` (apt-get install nats-server), " +
        "or run `docker compose up nats`, or set NATS_URL.",
    );
  }
}

/** Thrown by {@link spawnNatsServer} when the server exits, fails to spawn or does not get ready in time. */
export class NatsServerStartError extends Error {
  override readonly name = "NatsServerStartError";
  /** @param message what went wrong; `output` is appended.
   *  @param output the server's recent stderr/stdout.
   *  @param addressInUse true when the server could not bind its port (another process took it). */
  constructor(
    message: string,
    readonly output: string,
    readonly addressInUse: boolean,
  ) {
    super(output.trim() === "" ? message : `${message}; nats-server output:\n${output.trimEnd()}`);
  }
}

/** True if `file` is an existing regular file this process may execute. */
export function isExecutable(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Locate `nats-server`: each directory of `PATH`, then {@link NATS_SERVER_FALLBACK_DIRS}.
 * @returns the absolute path, or `undefined` if there is none.
 */
export function findNatsServerBinary(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = [...(env.PATH ?? "").split(delimiter).filter((d) => d !== ""), ...NATS_SERVER_FALLBACK_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, "nats-server");
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** Resolve true if a TCP connection to `host:port` is accepted within `timeoutMs`, false otherwise (never rejects). */
export function probeTcp(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host, port });
    let settled = false;
    const done = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * Connect to `host:port` and read the NATS `INFO` line the server sends first.
 * @returns the parsed INFO object, or `undefined` if nothing answers, or not with INFO, within `timeoutMs`.
 */
export function probeNatsInfo(host: string, port: number, timeoutMs = 500): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve) => {
    const socket = netConnect({ host, port });
    let settled = false;
    let buf = "";
    const done = (info: Record<string, unknown> | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(info);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buf += chunk;
      const eol = buf.indexOf("\r\n");
      if (eol < 0) {
        if (buf.length > 64 * 1024) done(undefined);
        return;
      }
      const line = buf.slice(0, eol);
      if (!line.startsWith("INFO ")) return done(undefined);
      try {
        const info: unknown = JSON.parse(line.slice(5));
        done(typeof info === "object" && info !== null ? (info as Record<string, unknown>) : undefined);
      } catch {
        done(undefined);
      }
    });
    socket.once("error", () => done(undefined));
    socket.once("close", () => done(undefined));
  });
}

/**
 * A TCP port that was free a moment ago on `host` (bind to port 0, read it, close).
 * Another process may take it before you do; {@link spawnNatsServer} reports that as `addressInUse`.
 */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close((err) => (err ? reject(err) : port > 0 ? resolve(port) : reject(new Error("no port assigned"))));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Cleanup when this process exits without having stopped what it started.

const exitHooks = new Set<() => void>();
let exitHandlerInstalled = false;

/**
 * Run `fn` synchronously when this process emits `exit` (only synchronous work happens there).
 * @returns a function that unregisters it.
 */
export function onProcessExit(fn: () => void): () => void {
  if (!exitHandlerInstalled) {
    exitHandlerInstalled = true;
    process.on("exit", () => {
      for (const hook of [...exitHooks]) {
        try {
          hook();
        } catch {
          // best effort: the process is going away
        }
      }
      exitHooks.clear();
    });
  }
  exitHooks.add(fn);
  return () => {
    exitHooks.delete(fn);
  };
}

/** Remove a directory tree synchronously, ignoring errors (for exit hooks). */
export function removeDirSync(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    // best effort
  }
}

// ---------------------------------------------------------------------------------------------
// Spawning.

const OUTPUT_LIMIT = 32 * 1024;

/** Options of {@link spawnNatsServer}. */
export interface SpawnNatsServerOptions {
  /** Path of the `nats-server` executable. */
  binary: string;
  /** Port to listen on (`-p`). */
  port: number;
  /** Address to listen on (`-a`); default 127.0.0.1. */
  host?: string;
  /** Enable JetStream (`-js`); default true. */
  jetstream?: boolean;
  /** JetStream store directory (`-sd`); passed only with JetStream on. */
  storeDir?: string;
  /** Extra command-line arguments, appended. */
  args?: string[];
  /** How long to wait for the port to accept connections; default 10 000 ms. */
  readyTimeoutMs?: number;
  /** Polling interval of the readiness probe; default 20 ms. */
  pollMs?: number;
  /** Called with each line the server writes to stderr or stdout. */
  onOutput?: (line: string, stream: "stderr" | "stdout") => void;
}

/** A running `nats-server` child process started by {@link spawnNatsServer}. */
export interface NatsServerProcess {
  /** The child process. */
  readonly child: ChildProcess;
  /** Its process id. */
  readonly pid: number;
  /** Client URL, `nats://host:port`. */
  readonly url: string;
  /** Port it listens on. */
  readonly port: number;
  /** True until the process has exited. */
  readonly running: boolean;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last 32 KiB of what it wrote to stderr and stdout. */
  output(): string;
  /**
   * Send `signal` (default SIGTERM) and wait for exit; after `graceMs` (default 5000) escalate to SIGKILL.
   * Resolves at once if it has already exited.
   */
  terminate(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

/** The command-line arguments {@link spawnNatsServer} passes. */
export function natsServerArgs(opts: Pick<SpawnNatsServerOptions, "host" | "port" | "jetstream" | "storeDir" | "args">): string[] {
  const args = ["-a", opts.host ?? "127.0.0.1", "-p", String(opts.port)];
  if (opts.jetstream ?? true) {
    args.push("-js");
    if (opts.storeDir !== undefined) args.push("-sd", opts.storeDir);
  }
  args.push(...(opts.args ?? []));
  return args;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Start `nats-server` and resolve once its port accepts TCP connections (and, unless `args` name
 * the server, the `INFO` it sends carries the unique `-n` name given to this child, so that
 * another process holding the port is never mistaken for it).
 *
 * The child is SIGKILLed if this process exits while it still runs. Rejects with
 * {@link NatsServerStartError} (carrying the server's output) if it fails to spawn, exits before
 * it is ready, or is not ready within `readyTimeoutMs` (it is then killed).
 */
export async function spawnNatsServer(opts: SpawnNatsServerOptions): Promise<NatsServerProcess> {
  const host = opts.host ?? "127.0.0.1";
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  const pollMs = opts.pollMs ?? 20;
  // A unique server name lets the readiness probe tell our server from another process that
  // holds the port (a port taken between freePort() and the bind): it checks INFO's server_name.
  // Skipped when the caller names the server.
  const userNamed = (opts.args ?? []).some((a) => /^--?(n|name|server_name)(=|$)/.test(a));
  const serverName = userNamed ? undefined : `sluice-local-${process.pid}-${opts.port}-${randomUUID().slice(0, 8)}`;
  const args = natsServerArgs({ ...opts, args: [...(serverName ? ["-n", serverName] : []), ...(opts.args ?? [])] });
  const child = spawn(opts.binary, args, { stdio: ["ignore", "pipe", "pipe"] });

  let output = "";
  const append = (text: string): void => {
    output += text;
    if (output.length > OUTPUT_LIMIT) output = output.slice(output.length - OUTPUT_LIMIT);
  };
  const pipeLines = (stream: NodeJS.ReadableStream | null, name: "stderr" | "stdout"): void => {
    if (stream === null) return;
    let partial = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      append(chunk);
      if (opts.onOutput === undefined) return;
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) if (line.trim() !== "") opts.onOutput(line, name);
    });
    stream.on("end", () => {
      if (partial.trim() !== "" && opts.onOutput !== undefined) opts.onOutput(partial, name);
      partial = "";
    });
  };
  pipeLines(child.stderr, "stderr");
  pipeLines(child.stdout, "stdout");

  let running = true;
  let spawnError: Error | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // "close" comes after "exit" once stdio has drained, so `output` is complete by then.
    child.once("close", (code, signal) => {
      running = false;
      resolve({ code, signal });
    });
    child.once("error", (err) => {
      spawnError = err;
      if (child.pid === undefined) {
        running = false;
        resolve({ code: null, signal: null });
      }
    });
  });

  const unregister = onProcessExit(() => {
    if (running) child.kill("SIGKILL");
  });
  void exited.then(unregister);

  const terminate = async (signal: NodeJS.Signals = "SIGTERM", graceMs = 5000): Promise<void> => {
    if (!running) return;
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const escalated = new Promise<"timeout">((r) => {
      timer = setTimeout(() => r("timeout"), graceMs);
    });
    const result = await Promise.race([exited, escalated]);
    clearTimeout(timer);
    if (result === "timeout" && running) {
      child.kill("SIGKILL");
      await exited;
    }
  };

  const fail = (message: string): NatsServerStartError =>
    new NatsServerStartError(message, output, /address already in use/i.test(output));

  const deadline = Date.now() + readyTimeoutMs;
  const cmd = `${opts.binary} ${args.join(" ")}`;
  const isOurs = async (): Promise<boolean> => {
    const timeout = Math.max(50, Math.min(500, deadline - Date.now()));
    if (serverName === undefined) return probeTcp(host, opts.port, timeout);
    const info = await probeNatsInfo(host, opts.port, timeout);
    return info !== undefined && info.server_name === serverName;
  };
  for (;;) {
    if (!running) {
      const { code, signal } = await exited;
      if (spawnError !== undefined) throw fail(`could not start ${cmd}: ${spawnError.message}`);
      throw fail(`${cmd} exited before it was ready (code ${code}, signal ${signal})`);
    }
    if ((await isOurs()) && running && spawnError === undefined) break;
    if (Date.now() >= deadline) {
      await terminate("SIGKILL");
      throw fail(`${cmd} did not accept connections on ${host}:${opts.port} within ${readyTimeoutMs} ms`);
    }
    await Promise.race([sleep(pollMs), exited]);
  }

  return {
    child,
    pid: child.pid as number,
    url: `nats://${host}:${opts.port}`,
    port: opts.port,
    get running() {
      return running;
    },
    exited,
    output: () => output,
    terminate,
  };
}

/**
 * {@link spawnNatsServer} on a free port, retrying with a fresh port (up to `attempts` times)
 * when the chosen one was taken between the check and the bind.
 */
export async function spawnNatsServerOnFreePort(
  opts: Omit<SpawnNatsServerOptions, "port">,
  attempts = 5,
): Promise<NatsServerProcess> {
  for (let i = 1; ; i++) {
    const port = await freePort(opts.host ?? "127.0.0.1");
    try {
      return await spawnNatsServer({ ...opts, port });
    } catch (err) {
      if (!(err instanceof NatsServerStartError && err.addressInUse) || i >= attempts) throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ensureNats

/** The NATS server the service should connect to. */
export interface LocalNats {
  /** Server URL(s) for `connect({ servers })`. */
  servers: string;
  /** True if {@link ensureNats} started a `nats-server` child for this process. */
  started: boolean;
  /** JetStream store directory of the started server (only when `started`). */
  storeDir?: string;
  /** Process id of the started server (only when `started`). */
  pid?: number;
  /** Stop the started server (SIGTERM, wait for exit, remove its store). No-op when not `started`. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link ensureNats}. */
export interface EnsureNatsOptions {
  /** `NATS_URL`: when set (non-empty) it is used as is and nothing is probed or started. */
  configured?: string;
  /** Where progress and the child's output (at debug) go. */
  logger: Logger;
  /** Host probed for an already running server; default 127.0.0.1. */
  probeHost?: string;
  /** Port probed for an already running server; default 4222. */
  probePort?: number;
  /** Use this `nats-server` executable instead of looking it up on PATH, /usr/sbin, /usr/local/bin. */
  binary?: string;
  /** Readiness timeout of the started server; default 10 000 ms. */
  readyTimeoutMs?: number;
}

/**
 * Decide which NATS server to use, starting one if needed.
 *
 * 1. `configured` (from `NATS_URL`) set: use it as is (`started: false`).
 * 2. Else probe `probeHost:probePort` (TCP connect, 500 ms timeout); if it answers, use it.
 * 3. Else find `nats-server` and spawn `nats-server -a 127.0.0.1 -p <free port> -js -sd <temp dir>`,
 *    wait until it accepts connections, and return it with `started: true`. Its output is logged at
 *    debug; its unexpected death is logged at error. It is killed if this process exits without
 *    calling `stop()`.
 *
 * @throws NatsServerMissingError when nothing answers and no binary is found.
 * @throws NatsServerStartError when the binary exists but the server does not come up.
 */
export async function ensureNats(opts: EnsureNatsOptions): Promise<LocalNats> {
  const { logger } = opts;
  const configured = opts.configured?.trim();
  if (configured !== undefined && configured !== "") {
    logger.debug({ url: configured }, "using the configured NATS server");
    return { servers: configured, started: false, stop: async () => {} };
  }

  const probeHost = opts.probeHost ?? DEFAULT_PROBE_HOST;
  const probePort = opts.probePort ?? DEFAULT_PROBE_PORT;
  const probeUrl = `nats://${probeHost}:${probePort}`;
  if (await probeTcp(probeHost, probePort, 500)) {
    logger.info({ url: probeUrl }, "using the NATS server already running locally");
    return { servers: probeUrl, started: false, stop: async () => {} };
  }

  const probed = `${probeHost}:${probePort}`;
  const binary = opts.binary ?? findNatsServerBinary();
  if (binary === undefined || !isExecutable(binary)) throw new NatsServerMissingError(probed);

  const storeDir = await mkdtemp(join(tmpdir(), "sluice-nats-"));
  const unregisterDir = onProcessExit(() => removeDirSync(storeDir));
  const childLog = logger.child({ component: "nats-server" });
  let server: NatsServerProcess;
  try {
    server = await spawnNatsServerOnFreePort({
      binary,
      jetstream: true,
      storeDir,
      readyTimeoutMs: opts.readyTimeoutMs,
      onOutput: (line, stream) => childLog.debug({ stream }, line),
    });
  } catch (err) {
    unregisterDir();
    await rm(storeDir, { recursive: true, force: true });
    // The binary vanished between the lookup and the spawn.
    if (err instanceof NatsServerStartError && !isExecutable(binary)) throw new NatsServerMissingError(probed);
    throw err;
  }

  let stopping: Promise<void> | undefined;
  void server.exited.then(({ code, signal }) => {
    if (stopping === undefined) {
      logger.error(
        { url: server.url, code, signal, output: server.output().slice(-4096) },
        "the local nats-server exited unexpectedly",
      );
    }
  });

  logger.info({ url: server.url, serverPid: server.pid, storeDir }, "started a local nats-server");
  return {
    servers: server.url,
    started: true,
    storeDir,
    pid: server.pid,
    stop: () => {
      stopping ??= (async () => {
        await server.terminate("SIGTERM");
        await rm(storeDir, { recursive: true, force: true });
        unregisterDir();
        logger.info({ url: server.url }, "stopped the local nats-server");
      })();
      return stopping;
    },
  };
}
