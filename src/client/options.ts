/**
 * The client's options: one defaults object with units in the names, spread
 * under the caller's partial options and validated once, in the constructor.
 */
import { z } from "zod";
import { type LimitsMode, MAX_BATCH, describeZodError, limitsModeSchema } from "../protocol/schemas.js";
import { SluiceClientError } from "./SluiceClientError.js";

/** Options of {@link SluiceClient}. Every field is optional; see {@link DEFAULT_CLIENT_OPTIONS}. */
export interface SluiceClientOptions {
  /** Subject prefix sluice serves under (`SLUICE_PREFIX` on the service). Default `sluice`. */
  prefix?: string;
  /**
   * NATS request timeout, ms. Default 5000. An admission with `waitMs` gets
   * `timeoutMs + waitMs`, so that waiting in sluice's queue never times out.
   */
  timeoutMs?: number;
  /**
   * Auto-batching of `admit()`: calls that do not wait (`waitMs` 0) made in the
   * same turn of the event loop are sent together, one call as `<p>.admit` and
   * several as one `<p>.admit.batch`. Default true.
   */
  batch?: boolean;
  /**
   * Extra time, ms, that calls are held for while an earlier admission of this
   * client is still unanswered, so that a busy client sends fewer, larger
   * batches (like Nagle's algorithm). The held calls go out when the earlier
   * reply arrives, when the window closes or when `maxBatch` are held,
   * whichever comes first. A client with nothing in flight never waits. Default
   * 0: only calls made in the same turn are combined, with no added latency.
   */
  batchWindowMs?: number;
  /** Most admissions in one `<p>.admit.batch`, 1–1000 (a turn of more than 32 calls is split in two at least). Default 100. */
  maxBatch?: number;
  /**
   * How often `report()` resends a report that names its lease when it fails with
   * `unavailable` (sluice shutting down or its journal unavailable, a timeout, no
   * responders). Safe: sluice counts a lease's report once, so a resend of one that
   * did arrive comes back `duplicate`. Reports without a lease are never resent (each
   * would count again). Default 3; 0 turns resending off.
   */
  reportRetries?: number;
  /** Wait before the first resend, ms; doubled for each further one, with jitter ×[1, 1.6]. Default 100. */
  reportRetryMs?: number;
  /**
   * How much of a decision's `limits` to ask for, where an admission does not say:
   * `all` (every limit, tightest first), `tightest` (the first only) or `none`.
   * Fewer limits are fewer bytes for sluice, NATS and this client to handle. Default `all`.
   */
  limits?: LimitsMode;
}

/** Defaults of {@link SluiceClientOptions}. */
export const DEFAULT_CLIENT_OPTIONS = {
  prefix: "sluice",
  timeoutMs: 5_000,
  batch: true,
  batchWindowMs: 0,
  maxBatch: 100,
  reportRetries: 3,
  reportRetryMs: 100,
  limits: "all",
} as const satisfies Required<SluiceClientOptions>;

/** Options after defaults and validation. */
export type ResolvedClientOptions = Required<SluiceClientOptions>;

/** Longest request timeout, ms: an hour. A timer past 2^31 ms (with a request's waitMs added) fires at once. */
export const MAX_TIMEOUT_MS = 3_600_000;
const TIMEOUT_ERROR = `expected a positive integer of ms, at most ${MAX_TIMEOUT_MS}`;

const optionsSchema = z.strictObject({
  prefix: z
    .string({ error: "expected a string" })
    .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, { error: "expected subject tokens such as sluice or acme.sluice" }),
  timeoutMs: z
    .number({ error: TIMEOUT_ERROR })
    .int({ error: TIMEOUT_ERROR })
    .positive({ error: TIMEOUT_ERROR })
    .max(MAX_TIMEOUT_MS, { error: TIMEOUT_ERROR }),
  batch: z.boolean({ error: "expected true or false" }),
  batchWindowMs: z
    .number({ error: "expected a number of ms from 0 to 60000" })
    .min(0, { error: "expected a number of ms from 0 to 60000" })
    .max(60_000, { error: "expected a number of ms from 0 to 60000" }),
  maxBatch: z
    .number({ error: `expected an integer from 1 to ${MAX_BATCH}` })
    .int({ error: `expected an integer from 1 to ${MAX_BATCH}` })
    .min(1, { error: `expected an integer from 1 to ${MAX_BATCH}` })
    .max(MAX_BATCH, { error: `expected an integer from 1 to ${MAX_BATCH}` }),
  reportRetries: z
    .number({ error: "expected an integer from 0 to 20" })
    .int({ error: "expected an integer from 0 to 20" })
    .min(0, { error: "expected an integer from 0 to 20" })
    .max(20, { error: "expected an integer from 0 to 20" }),
  reportRetryMs: z
    .number({ error: "expected a number of ms from 0 to 60000" })
    .min(0, { error: "expected a number of ms from 0 to 60000" })
    .max(60_000, { error: "expected a number of ms from 0 to 60000" }),
  limits: limitsModeSchema,
});

/** Defaults under `opts`, validated; throws `bad_request` naming the option and its value. */
export function resolveClientOptions(opts: SluiceClientOptions | null = {}): ResolvedClientOptions {
  // `null` and `undefined` mean "the defaults", as with every other option object.
  if (opts !== null && (typeof opts !== "object" || Array.isArray(opts))) throw new SluiceClientError("bad_request", "options: expected an object");
  const given = Object.fromEntries(Object.entries(opts ?? {}).filter(([, v]) => v !== undefined));
  const r = optionsSchema.safeParse({ ...DEFAULT_CLIENT_OPTIONS, ...given });
  if (!r.success) {
    const field = String(r.error.issues[0]?.path[0] ?? "");
    const value = field in given ? ` (got ${JSON.stringify((given as Record<string, unknown>)[field])})` : "";
    throw new SluiceClientError("bad_request", `options.${describeZodError(r.error)}${value}`);
  }
  return r.data;
}
