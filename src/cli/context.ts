/** What every command gets: the global options, the output, and a lazily opened NATS connection. */
import { type NatsConnection, connect } from "@nats-io/transport-node";
import { SluiceClient } from "../client/SluiceClient.js";
import { ConfigError, loadConfig } from "../config.js";
import { type CliIo, UsageError } from "./io.js";
import { type Paint, paint } from "./format.js";

/** The options every command takes. */
export interface GlobalOptions {
  /** NATS servers, comma-separated; undefined: `NATS_URL`, or 127.0.0.1:4222 (`serve`: its own fallback). */
  server?: string;
  /** Subject prefix; undefined: `SLUICE_PREFIX`, or `sluice`. */
  prefix?: string;
  /** Request timeout, ms. */
  timeoutMs: number;
  /** Print replies as JSON lines. */
  json: boolean;
}

/** Default NATS server of the CLI when neither `--server` nor `NATS_URL` is given. */
export const DEFAULT_CLI_SERVER = "127.0.0.1:4222";
/** Default request timeout of the CLI, ms. */
export const DEFAULT_CLI_TIMEOUT_MS = 5_000;

/** One CLI run's shared state. */
export class CommandContext {
  /** Colours for stdout: on for a terminal (NO_COLOR and FORCE_COLOR respected). */
  readonly paint: Paint;
  private nc?: NatsConnection;
  private client?: SluiceClient;

  constructor(
    /** The run's output, environment and interrupts. */
    readonly io: CliIo,
    /** The global options as given. */
    readonly global: GlobalOptions,
  ) {
    this.paint = paint(io.stdout.isTTY, io.env);
  }

  /** The servers to connect to. */
  get servers(): string {
    return this.global.server ?? (this.io.env.NATS_URL || DEFAULT_CLI_SERVER);
  }

  /** The subject prefix. */
  get prefix(): string {
    return this.global.prefix ?? (this.io.env.SLUICE_PREFIX || "sluice");
  }

  /** Print one line (or block) on stdout. */
  out(text: string): void {
    this.io.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
  }

  /** Print a value: as a JSON line with `--json`, otherwise as `human` renders it. */
  print<T>(value: T, human: (v: T) => string): void {
    this.out(this.global.json ? JSON.stringify(value) : human(value));
  }

  /** Connect to NATS (once); credentials and TLS from the environment, as the service reads them. */
  async connection(): Promise<NatsConnection> {
    if (this.nc) return this.nc;
    let natsOptions;
    try {
      natsOptions = loadConfig({ ...this.io.env, NATS_URL: undefined, SLUICE_PREFIX: undefined, LOG_LEVEL: undefined }).natsOptions;
    } catch (e) {
      if (e instanceof ConfigError) throw new UsageError(e.message);
      throw e;
    }
    const servers = this.servers.split(",").map((s) => s.trim()).filter(Boolean);
    // An empty list would connect to nats.js's default server rather than the one meant.
    if (servers.length === 0) throw new UsageError(`--server: expected one or more NATS URLs (got ${JSON.stringify(this.servers)})`);
    try {
      this.nc = await connect({ ...natsOptions, servers, name: "sluice-cli", timeout: this.global.timeoutMs });
    } catch (e) {
      throw new CliFailure(`cannot connect to NATS at ${servers.join(",")}: ${(e as Error).message}`);
    }
    return this.nc;
  }

  /** A client on the connection, with `--prefix` and `--timeout`. */
  async sluice(): Promise<SluiceClient> {
    if (this.client) return this.client;
    const nc = await this.connection();
    try {
      this.client = new SluiceClient(nc, { prefix: this.prefix, timeoutMs: this.global.timeoutMs, batch: false });
    } catch (e) {
      // The flags are checked before; this is the environment's SLUICE_PREFIX.
      const message = (e as Error).message;
      if (message.startsWith("options.prefix: ")) throw new UsageError(`--prefix (or SLUICE_PREFIX): ${message.replace(/^options\.prefix: /, "")}`);
      throw new UsageError(message);
    }
    return this.client;
  }

  /** Close the connection, if one was opened. */
  async close(): Promise<void> {
    await this.nc?.close().catch(() => {});
  }
}

/** A failure with a message of its own (not an error reply): one line, exit code 1. */
export class CliFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CliFailure";
  }
}
