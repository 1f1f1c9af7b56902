/**
 * `guard()`: one upstream call under sluice's control, from admission to report.
 *
 * 1. Admit. A `circuit_open` or `overloaded` rejection that names a `fallback`
 *    switches to that model at once (each model is tried once, so fallbacks
 *    cannot loop). Any other rejection with a `retryAfterMs` is waited out and
 *    retried while the retry still falls before the deadline; otherwise guard
 *    throws `rejected` with the last decision.
 * 2. Wait the decision's `delayMs` (adaptive pacing).
 * 3. Run the caller's function, timing it (latency, and TTFT/ITL when it marks tokens).
 * 4. Report the outcome against the lease, and return the function's value or
 *    rethrow its error.
 */
import type { Clock } from "../clock.js";
import type { Decision, ReportAck } from "../protocol/decision.js";
import type { AdmitRequestInput, ReportInput } from "../protocol/schemas.js";
import { SluiceClientError } from "./SluiceClientError.js";
import { sleep, waitingClock } from "./sleep.js";
import { upstreamRateLimit } from "./upstreamRateLimit.js";

/** An admission decision. */
export type AdmitDecision = Extract<Decision, { decision: "admit" }>;

/** What the guarded function is given. */
export interface GuardContext {
  /** The lease of the admission; guard reports against it, the function need not. */
  readonly lease: string;
  /** The model to call: the request's, or the fallback that sluice named. */
  readonly model: string;
  /** The admission itself (its `limits`, `delayMs`). */
  readonly decision: AdmitDecision;
  /** Aborted when the guard's `signal` aborts; pass it on to the upstream call. */
  readonly signal: AbortSignal;
  /** 1 for the first admission, counting every retry and fallback. */
  readonly attempt: number;
  /** Call when the first token arrives (streaming): the report's `ttftMs`. Later calls are ignored. */
  ttft(): void;
  /**
   * Call for every token after the first: the report's `itlMs` is the mean gap
   * between tokens. If `ttft()` was not called, the first `token()` stands in for it.
   */
  token(): void;
}

/**
 * What the guarded function resolves with: the `value` that guard resolves with,
 * and the actual usage to report. A figure left out is reported as unknown, so
 * sluice settles the lease at the admission's estimate.
 */
export interface GuardReturn<T> {
  /** What `guard()` resolves with. */
  value: T;
  /** Actual tokens used (prompt plus completion, as the limits count them). */
  tokens?: number;
  /** Actual cost, in the unit of the budgets. */
  cost?: number;
}

/** The function `guard()` runs once admitted. */
export type GuardedFn<T> = (ctx: GuardContext) => Promise<GuardReturn<T>> | GuardReturn<T>;

/** Options of `guard()`. */
export interface GuardOptions {
  /**
   * Cancels the whole guarded call. Before admission: guard rejects with the
   * signal's reason. After admission (during the pacing delay or the function):
   * guard reports `cancelled` (`timeout` if the reason is a `TimeoutError`, as
   * from `AbortSignal.timeout()`) and rejects with the reason at once, without
   * waiting for the function to settle.
   */
  signal?: AbortSignal;
  /** How long guard keeps retrying rejections, ms from the call. Default 30 000. */
  deadlineMs?: number;
  /** Time source for the deadline, the waits and the latencies. Default the wall clock, with timers that keep the process alive while guard waits. */
  clock?: Clock;
  /**
   * Called when a report cannot be delivered. The report is best-effort: its
   * failure never fails the call (sluice settles an unreported lease at its
   * estimate when it expires). Default: ignored.
   */
  onReportError?: (err: unknown) => void;
}

/** Defaults of {@link GuardOptions}, with units in the names. */
export const DEFAULT_GUARD_OPTIONS = { deadlineMs: 30_000 } as const;

/** What guard needs from the client. */
export interface GuardHost {
  admit(req: AdmitRequestInput): Promise<Decision>;
  report(input: ReportInput): Promise<ReportAck>;
}

const FALLBACK_REASONS = new Set(["circuit_open", "overloaded"]);

/** Run `fn` under admission control; see the module comment for the steps. */
export async function guard<T>(host: GuardHost, req: AdmitRequestInput, fn: GuardedFn<T>, opts: GuardOptions = {}): Promise<T> {
  if (typeof req !== "object" || req === null) throw new SluiceClientError("bad_request", "expected an admission request object");
  if (typeof fn !== "function") throw new SluiceClientError("bad_request", "expected a function to run once admitted");
  const clock = opts.clock ?? waitingClock;
  const signal = opts.signal;
  const deadlineMs = opts.deadlineMs ?? DEFAULT_GUARD_OPTIONS.deadlineMs;
  if (!(deadlineMs >= 0)) throw new SluiceClientError("bad_request", `deadlineMs: expected a non-negative number (got ${deadlineMs})`);
  const deadline = clock.now() + deadlineMs;

  // 1. Admission, with fallbacks and retries.
  const tried = new Set([req.model]);
  let model = req.model;
  let attempt = 0;
  let admitted: AdmitDecision;
  for (;;) {
    signal?.throwIfAborted();
    attempt++;
    const d = await untilAborted(host.admit({ ...req, model }), signal, (late) => {
      // Aborted while the admission was in flight: give back a lease granted after all.
      if (late.decision === "admit") void host.report({ lease: late.lease, key: req.key, model, outcome: "cancelled" }).catch(() => {});
    });
    if (d.decision === "admit") {
      admitted = d;
      break;
    }
    if (FALLBACK_REASONS.has(d.reason) && d.fallback !== undefined && !tried.has(d.fallback)) {
      tried.add(d.fallback);
      model = d.fallback;
      continue;
    }
    if (d.retryAfterMs === undefined || clock.now() + d.retryAfterMs > deadline) {
      const when = d.retryAfterMs === undefined ? "for good" : `until after the deadline (retry in ${d.retryAfterMs} ms)`;
      throw new SluiceClientError("rejected", `rejected ${when}: ${d.reason} by ${d.scope}`, { decision: d });
    }
    await sleep(clock, d.retryAfterMs, signal);
  }

  const lease = admitted.lease;
  const report = async (outcome: ReportInput["outcome"], extra: Omit<ReportInput, "lease" | "key" | "model" | "outcome"> = {}) => {
    const bare = { lease, key: req.key, model, outcome };
    try {
      await host.report({ ...bare, ...extra });
    } catch (err) {
      opts.onReportError?.(err);
      // Figures sluice refused (tokens of 12.5, a negative cost) must not keep the lease's slot
      // until it expires: the outcome alone is reported, and the lease settles at its estimate.
      if (err instanceof SluiceClientError && err.code === "bad_request" && Object.keys(extra).length > 0) {
        await host.report(bare).catch((again: unknown) => opts.onReportError?.(again));
      }
    }
  };
  const abortOutcome = (): "cancelled" | "timeout" =>
    (signal?.reason as { name?: unknown } | undefined)?.name === "TimeoutError" ? "timeout" : "cancelled";

  // 2. Pacing.
  if (admitted.delayMs > 0) {
    try {
      await sleep(clock, admitted.delayMs, signal);
    } catch (reason) {
      // Rejected at once, as documented; the report goes out meanwhile.
      void report(abortOutcome());
      throw reason;
    }
  }

  // 3. The call, timed.
  const started = clock.now();
  let firstAt: number | undefined;
  let lastAt = 0;
  let gaps = 0;
  const timings = () => {
    const t: { latencyMs: number; ttftMs?: number; itlMs?: number } = { latencyMs: clock.now() - started };
    if (firstAt !== undefined) t.ttftMs = firstAt - started;
    if (firstAt !== undefined && gaps > 0) t.itlMs = (lastAt - firstAt) / gaps;
    return t;
  };
  const ctx: GuardContext = {
    lease,
    model,
    decision: admitted,
    signal: signal ?? new AbortController().signal,
    attempt,
    ttft() {
      if (firstAt === undefined) firstAt = lastAt = clock.now();
    },
    token() {
      if (firstAt === undefined) firstAt = lastAt = clock.now();
      else {
        lastAt = clock.now();
        gaps++;
      }
    },
  };

  let result: GuardReturn<T>;
  try {
    signal?.throwIfAborted();
    result = await untilAborted(Promise.resolve().then(() => fn(ctx)), signal);
  } catch (err) {
    if (signal?.aborted) {
      // Whatever the function threw after the abort, the abort is what happened. Rejected at
      // once, as documented; the report goes out meanwhile.
      void report(abortOutcome(), timings());
      throw signal.reason;
    }
    const limited = upstreamRateLimit(err, clock.now());
    if (limited) await report("rate_limited", { ...timings(), ...limited });
    else await report("error", timings());
    throw err;
  }

  // 4. Success.
  const usage: { tokens?: number; cost?: number } = {};
  if (result?.tokens !== undefined) usage.tokens = result.tokens;
  if (result?.cost !== undefined) usage.cost = result.cost;
  await report("ok", { ...usage, ...timings() });
  return result?.value as T;
}

/**
 * `p`, or a rejection with the signal's reason as soon as it aborts. If the
 * abort wins, `late` still sees what `p` resolves with, and a later rejection
 * of `p` is swallowed.
 */
function untilAborted<V>(p: Promise<V>, signal: AbortSignal | undefined, late?: (v: V) => void): Promise<V> {
  if (!signal) return p;
  return new Promise<V>((resolve, reject) => {
    const onAbort = () => {
      reject(signal.reason);
      p.then((v) => late?.(v), () => {});
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
