/**
 * The service's settings, read once from the environment, defaulted once and
 * validated once. An error names the variable and the bad value.
 */
import { readFileSync } from "node:fs";
import { credsAuthenticator, type NodeConnectionOptions } from "@nats-io/transport-node";
import { z } from "zod";
import { stateNames } from "./persistence/stateNames.js";
import { scopeCapsFor } from "./registry/scopeCaps.js";
import { oldGenerationFigures } from "./service/HeapWatch.js";

/** Defaults, with units in their names. */
export const DEFAULT_CONFIG = {
  prefix: "sluice",
  logLevel: "info",
  /** Largest admission body, bytes. */
  maxAdmitBytes: 64 * 1024,
  /** Largest body of any other request (batches, policies), bytes. */
  maxBodyBytes: 1024 * 1024,
} as const;

const envSchema = z.object({
  NATS_URL: z.string().min(1).optional(),
  NATS_CREDS: z.string().min(1).optional(),
  NATS_USER: z.string().min(1).optional(),
  NATS_PASSWORD: z.string().optional(),
  NATS_TOKEN: z.string().min(1).optional(),
  NATS_TLS_CA: z.string().min(1).optional(),
  NATS_TLS_CERT: z.string().min(1).optional(),
  NATS_TLS_KEY: z.string().min(1).optional(),
  SLUICE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, { error: "expected subject tokens such as sluice or acme.sluice" })
    .default(DEFAULT_CONFIG.prefix),
  SLUICE_POLICY: z.string().min(1).optional(),
  SLUICE_HTTP_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  SLUICE_INSPECT: z.enum(["ws", "nats"]).optional(),
  SLUICE_PERSIST: z.enum(["on", "off", "auto"]).default("auto"),
  // Defaults depend on the prefix (stateNames).
  SLUICE_JOURNAL_STREAM: z.string().regex(/^[A-Za-z0-9_-]+$/, { error: "expected a stream name ([A-Za-z0-9_-])" }).optional(),
  SLUICE_STATE_BUCKET: z.string().regex(/^[A-Za-z0-9_-]+$/, { error: "expected a bucket name ([A-Za-z0-9_-])" }).optional(),
  SLUICE_SNAPSHOT_MS: z.coerce.number().int().min(10).default(5_000),
  SLUICE_JOURNAL_MAX_AGE_MS: z.coerce.number().int().min(1_000).default(7 * 24 * 3600_000),
  SLUICE_JOURNAL_DUPLICATE_WINDOW_MS: z.coerce.number().int().min(100).default(2 * 60_000),
  SLUICE_MAX_PENDING_APPENDS: z.coerce.number().int().min(1).default(10_000),
  SLUICE_IDLE_MS: z.coerce.number().int().min(1).default(600_000),
  SLUICE_MAX_SCOPES: z.coerce.number().int().min(1).optional(),
  SLUICE_MAX_LIVE_SCOPES: z.coerce.number().int().min(1).optional(),
  SLUICE_EVENT_THREAD: z.enum(["on", "off"]).default("on"),
  SLUICE_STANDBY: z.enum(["on", "off"]).default("off"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default(DEFAULT_CONFIG.logLevel),
});

/** Settings of one sluice process. */
export interface SluiceConfig {
  /** NATS servers from `NATS_URL` (comma-separated); absent: a local server is found or started. */
  natsUrl?: string;
  /** Connection options other than the servers (credentials, TLS). */
  natsOptions: Partial<NodeConnectionOptions>;
  /** Subject prefix, `SLUICE_PREFIX`. */
  prefix: string;
  /** Policy file, `SLUICE_POLICY`. */
  policyFile?: string;
  /** Metrics/dashboard port, `SLUICE_HTTP_PORT`. */
  httpPort?: number;
  /** XState inspection, `SLUICE_INSPECT`. */
  inspect?: "ws" | "nats";
  logLevel: string;
  /**
   * `SLUICE_PERSIST`: `on` requires JetStream, `auto` (default) persists when the server has
   * JetStream and runs in memory (with a warning) when it has not, `off` never persists.
   */
  persistMode: "on" | "off" | "auto";
  /** Durable state settings; undefined when `SLUICE_PERSIST=off`. */
  persistence?: {
    journalStream: string;
    stateBucket: string;
    snapshotMs: number;
    maxAgeMs: number;
    duplicateWindowMs: number;
    maxPendingAppends: number;
  };
  /** Passivate scopes idle this long, ms (`SLUICE_IDLE_MS`). */
  idleMs: number;
  /**
   * Most scopes, live and passivated (`SLUICE_MAX_SCOPES`); past it new ones are refused
   * `unavailable`. Default: in proportion to the heap (see `scopeCapsFor`), 2 000 000 with
   * npm start's 1280 MB.
   */
  maxScopes: number;
  /**
   * Most live scope actors (`SLUICE_MAX_LIVE_SCOPES`): an admission that would bring one
   * more to life is refused `unavailable`; past 80% of it, scopes holding nothing are
   * passivated before their idle time. Default: in proportion to the heap, 120 000 with
   * npm start's 1280 MB.
   */
  maxLiveScopes: number;
  /** Publish decision events from a thread with a NATS connection of its own (`SLUICE_EVENT_THREAD`, default on). */
  eventThread: boolean;
  /**
   * Where a sluice already serves the prefix, wait until it stops, then start
   * (`SLUICE_STANDBY=on`), rather than exit 1 (default).
   */
  standby: boolean;
}

export class ConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/**
 * Read the settings from `env`; throws {@link ConfigError} naming the variable. The caps on
 * scopes that are not set follow `heapCeilingBytes`, the old generation's ceiling (default:
 * this process's).
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, heapCeilingBytes: number = oldGenerationFigures().ceiling): SluiceConfig {
  const r = envSchema.safeParse(env);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const name = String(issue.path[0]);
    throw new ConfigError(`${name}=${JSON.stringify(env[name])}: ${issue.message}`);
  }
  const e = r.data;
  const natsOptions: Partial<NodeConnectionOptions> = {};
  if (e.NATS_CREDS) {
    let creds: Uint8Array;
    try {
      creds = readFileSync(e.NATS_CREDS);
    } catch (cause) {
      throw new ConfigError(`NATS_CREDS=${JSON.stringify(e.NATS_CREDS)}: cannot read the credentials file`, { cause });
    }
    natsOptions.authenticator = credsAuthenticator(creds);
  }
  if (e.NATS_USER) {
    natsOptions.user = e.NATS_USER;
    natsOptions.pass = e.NATS_PASSWORD ?? "";
  }
  if (e.NATS_TOKEN) natsOptions.token = e.NATS_TOKEN;
  if (e.NATS_TLS_CA || e.NATS_TLS_CERT || e.NATS_TLS_KEY) {
    if ((e.NATS_TLS_CERT === undefined) !== (e.NATS_TLS_KEY === undefined)) {
      throw new ConfigError("NATS_TLS_CERT and NATS_TLS_KEY: give both or neither");
    }
    natsOptions.tls = { caFile: e.NATS_TLS_CA, certFile: e.NATS_TLS_CERT, keyFile: e.NATS_TLS_KEY };
  }
  const names = stateNames(e.SLUICE_PREFIX);
  const caps = scopeCapsFor(heapCeilingBytes);
  return {
    natsUrl: e.NATS_URL,
    natsOptions,
    prefix: e.SLUICE_PREFIX,
    policyFile: e.SLUICE_POLICY,
    httpPort: e.SLUICE_HTTP_PORT,
    inspect: e.SLUICE_INSPECT,
    logLevel: e.LOG_LEVEL,
    persistMode: e.SLUICE_PERSIST,
    persistence:
      e.SLUICE_PERSIST === "off"
        ? undefined
        : {
            journalStream: e.SLUICE_JOURNAL_STREAM ?? names.journalStream,
            stateBucket: e.SLUICE_STATE_BUCKET ?? names.stateBucket,
            snapshotMs: e.SLUICE_SNAPSHOT_MS,
            maxAgeMs: e.SLUICE_JOURNAL_MAX_AGE_MS,
            duplicateWindowMs: e.SLUICE_JOURNAL_DUPLICATE_WINDOW_MS,
            maxPendingAppends: e.SLUICE_MAX_PENDING_APPENDS,
          },
    idleMs: e.SLUICE_IDLE_MS,
    maxScopes: e.SLUICE_MAX_SCOPES ?? caps.maxScopes,
    maxLiveScopes: e.SLUICE_MAX_LIVE_SCOPES ?? caps.maxLive,
    eventThread: e.SLUICE_EVENT_THREAD === "on",
    standby: e.SLUICE_STANDBY === "on",
  };
}
