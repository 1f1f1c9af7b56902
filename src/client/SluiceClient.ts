/**
 * The sluice client: typed calls for every subject of the protocol, over a
 * NATS connection that the caller owns (the client never closes it).
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { PolicyDocument } from "../../machines/policy.js";
import { DEFAULT_CONFIG } from "../config.js";
import type { Decision, ReportAck } from "../protocol/decision.js";
import {
  MAX_BATCH,
  type AdmitRequest,
  type AdmitRequestInput,
  type ReportInput,
  describeZodError,
  reportSchema,
  resetRequestSchema,
  safeParseAdmitRequest,
} from "../protocol/schemas.js";
import { AdmitBatcher } from "./AdmitBatcher.js";
import { DecisionFeed, type DecisionFilter } from "./DecisionFeed.js";
import { type GuardOptions, type GuardReturn, type GuardedFn, guard } from "./guard.js";
import { type ResolvedClientOptions, type SluiceClientOptions, resolveClientOptions } from "./options.js";
import type { ResetWhat, ScopeInspection, ScopeList } from "./replies.js";
import { requestJson } from "./rpc.js";
import { SluiceClientError, fromErrorReply, fromTransportError, isSluiceClientError } from "./SluiceClientError.js";
import { sleep, waitingClock } from "./sleep.js";
import type { z } from "zod";

/** A report's outcome: `ok`, `rate_limited` (upstream 429), `error`, `timeout` or `cancelled`. */
export type Outcome = ReportInput["outcome"];

/** The optional fields of a report made with `report(lease, outcome, extra)`. */
export type ReportExtra = Omit<ReportInput, "lease" | "outcome">;

/** The admin calls for the policy document. */
export interface PolicyAdmin {
  /** The policy document in force. */
  get(): Promise<PolicyDocument>;
  /**
   * Replace the policy. Live scopes keep their usage. A document that does not
   * validate is refused by sluice with `bad_request` naming the field, and the
   * policy in force stays.
   */
  set(doc: PolicyDocument): Promise<void>;
}

/**
 * A client of sluice. Cheap to create; holds no resources of its own besides
 * the calls in flight.
 *
 * ```ts
 * const sluice = new SluiceClient(nc, { prefix: "sluice" });
 * const answer = await sluice.guard({ key: "acme", model: "gpt-4o", tokens: 1200 }, async ({ model, signal }) => {
 *   const r = await openai.chat.completions.create({ model, messages }, { signal });
 *   return { value: r, tokens: r.usage?.total_tokens };
 * });
 * ```
 */
export class SluiceClient {
  /** The options in force, after defaults. */
  readonly options: Readonly<ResolvedClientOptions>;
  /** Policy administration (`<p>.admin.policy.get` / `.set`). */
  readonly policy: PolicyAdmin;
  private readonly batcher: AdmitBatcher;
  /** Largest `admit.batch` body: sluice's limit, or the server's `max_payload` if smaller. */
  private readonly maxBatchBytes: number;

  /**
   * @param nc a NATS connection, owned by the caller.
   * @param opts see {@link SluiceClientOptions}; throws `bad_request` naming a bad option.
   */
  constructor(
    private readonly nc: NatsConnection,
    opts: SluiceClientOptions | null = {},
  ) {
    this.options = Object.freeze(resolveClientOptions(opts));
    const p = this.options.prefix;
    const maxPayload = nc.info?.max_payload;
    this.maxBatchBytes = Math.min(DEFAULT_CONFIG.maxBodyBytes, maxPayload && maxPayload > 0 ? maxPayload : Infinity);
    this.batcher = new AdmitBatcher(
      {
        one: (body) => requestJson<Decision>(nc, `${p}.admit`, body, this.options.timeoutMs),
        many: (bodies) => requestJson<unknown[]>(nc, `${p}.admit.batch`, `[${bodies.join(",")}]`, this.options.timeoutMs),
      },
      {
        maxBatch: this.options.maxBatch,
        windowMs: this.options.batchWindowMs,
        maxBytes: this.maxBatchBytes,
      },
    );
    this.policy = {
      get: () => requestJson<PolicyDocument>(nc, `${p}.admin.policy.get`, {}, this.options.timeoutMs),
      set: async (doc) => {
        await requestJson(nc, `${p}.admin.policy.set`, doc, this.options.timeoutMs);
      },
    };
  }

  /** The subject prefix. */
  get prefix(): string {
    return this.options.prefix;
  }

  /**
   * Ask for admission. Resolves with the decision, admit or reject: a rejection
   * is an answer, not an error. Rejects with a {@link SluiceClientError}:
   * `bad_request` naming the field when `req` does not validate (nothing is
   * sent), the error reply's code, or `unavailable` when NATS fails.
   *
   * Calls with `waitMs` 0 are auto-batched (see {@link SluiceClientOptions.batch});
   * a call that waits in sluice's queue is always sent alone, so that it cannot
   * hold back the replies of others, with a timeout of `timeoutMs + waitMs`.
   */
  admit(req: AdmitRequestInput): Promise<Decision> {
    const r = safeParseAdmitRequest(req);
    if (!r.success) return Promise.reject(new SluiceClientError("bad_request", describeZodError(r.error)));
    const valid = r.data;
    const body = JSON.stringify(this.withLimits(valid));
    if (this.options.batch && valid.waitMs === 0) return this.batcher.add(body);
    return requestJson<Decision>(this.nc, `${this.prefix}.admit`, body, this.options.timeoutMs + valid.waitMs);
  }

  /** `req` with the client's {@link SluiceClientOptions.limits} where it names none itself. */
  private withLimits(req: AdmitRequest): AdmitRequest {
    if (req.limits === undefined && this.options.limits !== "all") req.limits = this.options.limits;
    return req;
  }

  /**
   * Several admissions in one `<p>.admit.batch` message (at most 1000). Resolves
   * with one entry per request, in order: its decision, or a
   * {@link SluiceClientError} in its place for an item that did not validate
   * (here or in sluice). The items are separate admissions, decided in order.
   * If any item waits (`waitMs`), the reply comes once every item is decided.
   */
  async admitBatch(reqs: readonly AdmitRequestInput[]): Promise<(Decision | SluiceClientError)[]> {
    if (!Array.isArray(reqs)) throw new SluiceClientError("bad_request", "expected an array of admission requests");
    if (reqs.length > MAX_BATCH) throw new SluiceClientError("too_large", `${reqs.length} requests, at most ${MAX_BATCH}`);
    const out: (Decision | SluiceClientError)[] = new Array(reqs.length);
    const bodies: string[] = [];
    const at: number[] = [];
    let waitMs = 0;
    reqs.forEach((req, i) => {
      const r = safeParseAdmitRequest(req);
      if (!r.success) out[i] = new SluiceClientError("bad_request", `[${i}].${describeZodError(r.error)}`);
      else {
        bodies.push(JSON.stringify(this.withLimits(r.data)));
        at.push(i);
        waitMs = Math.max(waitMs, r.data.waitMs);
      }
    });
    if (bodies.length === 0) return out;
    const body = `[${bodies.join(",")}]`;
    // Refused here as sluice (or NATS's max_payload) would: too_large, never a retryable unavailable.
    const bytes = Buffer.byteLength(body);
    if (bytes > this.maxBatchBytes) throw new SluiceClientError("too_large", `admit.batch: ${bytes} bytes, at most ${this.maxBatchBytes}`);
    const reply = await requestJson<unknown[]>(this.nc, `${this.prefix}.admit.batch`, body, this.options.timeoutMs + waitMs);
    if (!Array.isArray(reply) || reply.length !== bodies.length) {
      throw new SluiceClientError("internal", `admit.batch: expected an array of ${bodies.length} replies`);
    }
    reply.forEach((r, j) => {
      const i = at[j]!;
      // The service numbers items within what was sent; renumber them as the caller's.
      const err = fromErrorReply(r);
      out[i] = err ? new SluiceClientError(err.code, err.message.replace(/^\[\d+\]\./, `[${i}].`), { status: err.status }) : (r as Decision);
    });
    return out;
  }

  /**
   * Report an outcome and wait for sluice's acknowledgement (`status`: applied,
   * duplicate, late or orphan). Either `report(lease, outcome, extra?)` or
   * `report({ lease?, key?, model?, outcome, … })`.
   */
  report(lease: string, outcome: Outcome, extra?: ReportExtra): Promise<ReportAck>;
  report(input: ReportInput): Promise<ReportAck>;
  report(a: string | ReportInput, outcome?: Outcome, extra?: ReportExtra): Promise<ReportAck> {
    let rep;
    try {
      rep = parse(reportSchema, toReport(a, outcome, extra));
    } catch (e) {
      return Promise.reject(e);
    }
    // Only a report that names its lease is counted once however often it arrives.
    return this.sendReport(JSON.stringify(rep), rep.lease !== undefined ? this.options.reportRetries : 0);
  }

  /** Send a report, resending it up to `retries` times while the answer is `unavailable` (see `reportRetries`). */
  private async sendReport(body: string, retries: number): Promise<ReportAck> {
    let wait = this.options.reportRetryMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await requestJson<ReportAck>(this.nc, `${this.prefix}.report`, body, this.options.timeoutMs);
      } catch (e) {
        if (attempt >= retries || !isSluiceClientError(e, "unavailable") || this.nc.isClosed()) throw e;
        await sleep(waitingClock, Math.ceil(wait * (1 + Math.random() * 0.6)));
        wait *= 2;
      }
    }
  }

  /**
   * Publish a report without waiting for an acknowledgement (fire and forget).
   * Same arguments as {@link SluiceClient.report}. Throws `bad_request` at once for
   * a report that does not validate, and `unavailable` if the connection is
   * closed. Delivery is not confirmed: `nc.flush()` waits until the server has it.
   */
  publishReport(lease: string, outcome: Outcome, extra?: ReportExtra): void;
  publishReport(input: ReportInput): void;
  publishReport(a: string | ReportInput, outcome?: Outcome, extra?: ReportExtra): void {
    const body = JSON.stringify(parse(reportSchema, toReport(a, outcome, extra)));
    const subject = `${this.prefix}.report`;
    try {
      this.nc.publish(subject, body);
    } catch (e) {
      throw fromTransportError(e, subject);
    }
  }

  /** A scope's actor snapshot, effective policy and derived figures (`live: false` if it has no actor). */
  inspect(scope: string): Promise<ScopeInspection> {
    return requestJson<ScopeInspection>(this.nc, `${this.prefix}.inspect`, { scope }, this.options.timeoutMs);
  }

  /** Live scopes whose name starts with `prefix` (`""`: all), sorted; at most `limit` (1–10 000, default 1000). */
  list(prefix = "", opts: { limit?: number } = {}): Promise<ScopeList> {
    const body = opts.limit === undefined ? { list: prefix } : { list: prefix, limit: opts.limit };
    return requestJson<ScopeList>(this.nc, `${this.prefix}.inspect`, body, this.options.timeoutMs);
  }

  /**
   * Admin reset of a scope: `breaker` closes its breaker, `usage` refills its
   * buckets and zeroes its budget, `all` (default) does both and clears pacing
   * and latency averages. Resolves once applied; a scope that is not live is a no-op.
   */
  async reset(scope: string, what: ResetWhat = "all"): Promise<void> {
    const body = parse(resetRequestSchema, { scope, what });
    await requestJson(this.nc, `${this.prefix}.admin.reset`, body, this.options.timeoutMs);
  }

  /**
   * The live decisions, optionally only admissions or rejections, or one
   * model's: an RxJS Observable that is also an async iterable.
   */
  decisions(filter: DecisionFilter = {}): DecisionFeed {
    if (filter.decision !== undefined && filter.decision !== "admit" && filter.decision !== "reject") {
      throw new SluiceClientError("bad_request", `decision: expected admit or reject (got ${JSON.stringify(filter.decision)})`);
    }
    return new DecisionFeed(this.nc, this.prefix, filter);
  }

  /**
   * Run `fn` under admission control: admit (with fallbacks and retries), wait
   * the pacing delay, run `fn`, report its outcome with the measured latencies,
   * and resolve with `fn`'s `value`. `fn` resolves with `{ value, tokens?, cost? }`
   * ({@link GuardReturn}). An upstream 429 thrown by `fn` is reported
   * `rate_limited` with its retry time; any other throw is reported `error`;
   * both are rethrown. See {@link GuardOptions} for cancellation and the deadline.
   */
  guard<T>(req: AdmitRequestInput, fn: GuardedFn<T>, opts?: GuardOptions): Promise<T> {
    return guard(this, req, fn, opts);
  }
}

function toReport(a: string | ReportInput, outcome: Outcome | undefined, extra: ReportExtra | undefined): unknown {
  if (typeof a === "string") return { ...extra, lease: a, outcome };
  return a;
}

function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new SluiceClientError("bad_request", describeZodError(r.error));
  return r.data;
}
