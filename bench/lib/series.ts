/**
 * What the bench measures: each series is one program (the load generator,
 * bench/load.ts, or the in-process runner, bench/inproc.ts) run in a separate
 * process at each of its levels (calls in flight, or requests per turn).
 * A series names what it needs started; when something is missing it is
 * reported as skipped, with the reason, and the rest still runs.
 */
import type { LoadMode } from "./result.js";

/** What a series needs: the bench's nats-server, a target process, the built client package. */
export type Need = "nats" | "echo" | "sluice" | "redis" | "client" | "jetstream";

/** Where the series' figures are compared to: the same level of another series, or a fixed one. */
export interface RatioTo {
  series: string;
  /** A fixed level of the other series (default: the same level). */
  level?: number;
  /** How the reference is named in the table: `echo`, `plain`, … */
  name: string;
}

export interface Series {
  id: string;
  /** Section heading of the table. */
  section: string;
  /** Row label. */
  label: string;
  /** What its ops are, per second. */
  unit: string;
  /** `durability`: measured by the orchestrator itself (bench/lib/durability.ts), not by a program. */
  program: "load" | "inproc" | "durability";
  mode: LoadMode;
  needs: Need[];
  /** `in flight` or `per turn`. */
  levelKind: "in flight" | "per turn" | "no ack";
  levels: number[];
  ratio?: RatioTo;
  /** One unmeasured load before the first run (server side: scopes, JIT, Redis keys). */
  prime: boolean;
  /** Extra arguments of the program. */
  extraArgs?: string[];
}

export interface Plan {
  /** In-flight counts over the network. */
  levels: number[];
  /** In-flight counts of the batch series. */
  batchLevels: number[];
  /** Requests per turn of the in-process series. */
  chunks: number[];
  /** Requests per `admit.batch` message. */
  batchSize: number;
  /** In-flight count of the client auto-batching series (and where it meets the peer). */
  clientLevel: number;
}

export const SECTIONS = {
  echo: "Transport ceiling: bare NATS echo (replies/s; latency of one request)",
  single: "sluice single admissions, <p>.admit (decisions/s; ratio to echo at the same level)",
  batch: "sluice batches, <p>.admit.batch (decisions/s; latency of one batch message; ratio to single)",
  client: "Client auto-batching: SluiceClient.admit() (admissions/s; ratio to the Redis peer)",
  peer: "The peer: rate-limiter-flexible RateLimiterRedis on ioredis, key + model consume (checks/s; ratio to sluice single)",
  inproc: "In process, no NATS (admissions/s; latency = one turn of the loop; ratio to the plain bucket)",
  durability: "Cost of durability: <p>.report, each for a fresh lease (reports/s; `admitted` = share answered/counted `applied`; ratio to in-memory)",
} as const;

export function allSeries(plan: Plan): Series[] {
  return [
    {
      id: "echo", section: SECTIONS.echo, label: "echo (bare NATS request/reply)", unit: "replies/s",
      program: "load", mode: "echo", needs: ["nats", "echo"], levelKind: "in flight", levels: plan.levels, prime: true,
    },
    {
      id: "sluice", section: SECTIONS.single, label: "sluice admit", unit: "decisions/s",
      program: "load", mode: "admit", needs: ["nats", "sluice"], levelKind: "in flight", levels: plan.levels, prime: true,
      ratio: { series: "echo", name: "echo" },
    },
    {
      id: "batch", section: SECTIONS.batch, label: `sluice admit.batch ×${plan.batchSize}`, unit: "decisions/s",
      program: "load", mode: "batch", needs: ["nats", "sluice"], levelKind: "in flight", levels: plan.batchLevels, prime: true,
      ratio: { series: "sluice", name: "single" }, extraArgs: [`--batch=${plan.batchSize}`],
    },
    {
      // The peer's callers get each limiter's remaining points; the client asks for the one limit that binds.
      id: "client", section: SECTIONS.client, label: "SluiceClient.admit (auto-batched, limits: tightest)", unit: "admissions/s",
      program: "load", mode: "client", needs: ["nats", "sluice", "client"], levelKind: "in flight", levels: [plan.clientLevel], prime: true,
      ratio: { series: "rlf-redis", name: "peer" }, extraArgs: ["--limits=tightest"],
    },
    {
      id: "rlf-redis", section: SECTIONS.peer, label: "RateLimiterRedis ×2", unit: "checks/s",
      program: "load", mode: "rlf-redis", needs: ["redis"], levelKind: "in flight", levels: plan.levels, prime: true,
      ratio: { series: "sluice", name: "sluice" },
    },
    {
      id: "core", section: SECTIONS.inproc, label: "sluice core: Admissions.admitMany", unit: "admissions/s",
      program: "inproc", mode: "core", needs: [], levelKind: "per turn", levels: plan.chunks, prime: false,
      ratio: { series: "plain", name: "plain" },
    },
    {
      id: "plain", section: SECTIONS.inproc, label: "plain-object token bucket", unit: "admissions/s",
      program: "inproc", mode: "plain", needs: [], levelKind: "per turn", levels: plan.chunks, prime: false,
    },
    {
      id: "rlf-memory", section: SECTIONS.inproc, label: "RateLimiterMemory ×2", unit: "checks/s",
      program: "inproc", mode: "rlf-memory", needs: [], levelKind: "per turn", levels: plan.chunks, prime: false,
      ratio: { series: "plain", name: "plain" },
    },
  ];
}

/** Ids of the series outside {@link allSeries}: the durability ones and the memory drive. */
export const MEMORY_SERIES_ID = "memory";

/** The durability series (bench/lib/durability.ts), at `levels` in flight. */
export function durabilitySeries(levels: number[]): Series[] {
  return [
    {
      id: "report-durable", section: SECTIONS.durability, label: "report, acked, SLUICE_PERSIST=on", unit: "reports/s",
      program: "durability", mode: "report-ack", needs: ["nats", "jetstream"], levelKind: "in flight", levels, prime: true,
      ratio: { series: "report-memory", name: "in-memory" },
    },
    {
      id: "report-memory", section: SECTIONS.durability, label: "report, acked, SLUICE_PERSIST=off", unit: "reports/s",
      program: "durability", mode: "report-ack", needs: ["nats"], levelKind: "in flight", levels, prime: true,
    },
    {
      id: "publish-durable", section: SECTIONS.durability, label: "report, published, SLUICE_PERSIST=on", unit: "reports/s",
      program: "durability", mode: "report-publish", needs: ["nats", "jetstream"], levelKind: "no ack", levels: [0], prime: false,
      ratio: { series: "publish-memory", name: "in-memory" },
    },
    {
      id: "publish-memory", section: SECTIONS.durability, label: "report, published, SLUICE_PERSIST=off", unit: "reports/s",
      program: "durability", mode: "report-publish", needs: ["nats"], levelKind: "no ack", levels: [0], prime: false,
    },
  ];
}
