/**
 * The state of one scope and the pure functions that move it. The XState machine
 * in `scopeMachine.ts` wraps these; the runtime reads `scopeCheck` on a snapshot
 * to decide, then sends the commit event. No I/O, no clock: `now` is an argument.
 */
import { type AverageState, averageInit, averageValue } from "./latencyAverage.js";
import {
  type BudgetState,
  type Usage,
  budgetAdvance,
  budgetAmount,
  budgetCheck,
  budgetInit,
  budgetRebase,
  budgetReserve,
  budgetResetUsage,
  budgetSettle,
  budgetUse,
} from "./budget.js";
import {
  type BreakerState,
  type Outcome,
  breakerAdvance,
  breakerCheck,
  breakerInit,
  breakerOnAdmit,
  breakerOnOutcome,
  breakerReset,
} from "./breaker.js";
import { type LatencyLimitState, type LatencySample, latencyLimitInit, latencyLimitOnReport, latencyLimitSlots } from "./latencyLimit.js";
import { type PacingState, pacingDelay, pacingInit, pacingOnOutcome, pacingReset, pacingTake } from "./pacing.js";
import type { BucketLimit, BudgetPolicy, RateKind, ResolvedLimits } from "./policy.js";
import { type BucketState, bucketAdjustInPlace, bucketCheck, bucketInit, bucketRebase, bucketTakeInPlace, bucketWaitMs } from "./tokenBucket.js";

export type { Outcome, Usage };

/** Why an admission was refused (or `ok`). */
export type Reason =
  | "ok"
  | "rate_limited"
  | "concurrency"
  | "budget_exhausted"
  | "circuit_open"
  | "overloaded"
  | "backoff"
  | "too_large";

/** One limit that applied to a decision, as shown in `limits`. */
export interface LimitInfo {
  scope: string;
  kind: RateKind | "concurrency" | "budget";
  /** Budgets: what is counted (`cost`, `tokens`, `requests`). */
  unit?: string;
  limit: number;
  remaining: number;
  /** Time until the limit has room again (budgets: until the reset), ms. */
  resetMs?: number;
}

/** The context of a scope actor. */
export interface ScopeContext {
  scope: string;
  limits: ResolvedLimits;
  /** Token buckets by rate kind. */
  buckets: Partial<Record<RateKind, BucketState>>;
  /** Unexpired leases holding a concurrency slot. */
  held: number;
  /** One state per budget of `limits.budgets`, in the same order; each counts and resets on its own. */
  budgets: BudgetState[];
  /** Per budget: usage at or over its limit (for the once-per-crossing event). */
  budgetExhausted: boolean[];
  breaker: BreakerState | null;
  pacing: PacingState | null;
  ttft: AverageState | null;
  itl: AverageState | null;
  /** A latency average is over its threshold (for the on/off events). */
  overloaded: boolean;
  /** Adaptive concurrency limit from reported latencies (scopes with `latency`). */
  latencyLimit: LatencyLimitState | null;
  /** Leases settled at their estimate because they expired unreported (since the last usage reset). */
  unreported: number;
  /** Last event time, ms epoch (for passivation). */
  lastActiveAt: number;
}

/** What an admission asks of a scope. */
export interface Demand {
  tokens: number;
  cost: number;
  /** How long the caller will wait in sluice's queue, ms (its patience for pacing, too). */
  waitMs?: number;
}

export type ScopeVerdict =
  | { ok: true; delayMs: number; limits: LimitInfo[] }
  | { ok: false; reason: Exclude<Reason, "ok">; retryAfterMs?: number; fallback?: string; limits: LimitInfo[] };

/** What the runtime knows that the scope does not. */
export interface ScopeHints {
  /** When a concurrency slot is expected to free, ms from now (used when the scope is full). */
  concurrencyWaitMs?: number;
}

/** A state change worth telling the world about (`<p>.events.<kind>.<value>`). */
export interface ScopeNotice {
  type:
    | "breaker.opened"
    | "breaker.half_open"
    | "breaker.closed"
    | "budget.exhausted"
    | "budget.reset"
    | "pacing.changed"
    | "overloaded.on"
    | "overloaded.off";
  [field: string]: unknown;
}

export interface Step {
  ctx: ScopeContext;
  notices: ScopeNotice[];
}

/** A settled lease or report as one scope sees it. */
export interface Settlement {
  estimate: Usage;
  actual: Usage;
  /** The reported outcome; `expired` when the lease ran out unreported. */
  outcome: Outcome | "expired";
  /** The upstream's own retry-after, on `rate_limited`. */
  retryAfterMs?: number;
  /** The lease held a concurrency slot in this scope. */
  held: boolean;
  /** The lease was admitted while this scope's breaker was half-open. */
  probe: boolean;
  /** Latencies the report carried. */
  latency?: LatencySample;
}

/** A fresh scope: full buckets, no usage, closed breaker. */
export function scopeInit(scope: string, limits: ResolvedLimits, now: number): ScopeContext {
  const buckets: Partial<Record<RateKind, BucketState>> = {};
  for (const b of limits.buckets) buckets[b.kind] = bucketInit(b, now);
  return {
    scope,
    limits,
    buckets,
    held: 0,
    budgets: limits.budgets.map((b) => budgetInit(b, now)),
    budgetExhausted: limits.budgets.map(() => false),
    breaker: limits.breaker ? breakerInit() : null,
    pacing: limits.adaptive ? pacingInit() : null,
    ttft: limits.latency ? averageInit(now) : null,
    itl: limits.latency ? averageInit(now) : null,
    overloaded: false,
    latencyLimit: limits.latency ? latencyLimitInit(limits.latency) : null,
    unreported: 0,
    lastActiveAt: now,
  };
}

/**
 * A copy of `c` with every field written out, for the steps below to change fields of before
 * returning it (the input is never touched). Not `{ ...c, field }`: V8 builds a spread with
 * overrides on a slow path, about 0.8 µs for a context against 0.02 µs for this literal, and the
 * scope steps run several times per admission. It also gives every context one shape, whether
 * made here, restored from JSON or revived.
 */
function scopeCopy(c: ScopeContext): ScopeContext {
  return {
    scope: c.scope,
    limits: c.limits,
    buckets: c.buckets,
    held: c.held,
    budgets: c.budgets,
    budgetExhausted: c.budgetExhausted,
    breaker: c.breaker,
    pacing: c.pacing,
    ttft: c.ttft,
    itl: c.itl,
    overloaded: c.overloaded,
    latencyLimit: c.latencyLimit,
    unreported: c.unreported,
    lastActiveAt: c.lastActiveAt,
  };
}

/**
 * A copy of `c` that shares nothing the in-place steps write: the bucket states and the
 * budget arrays are copied too (the states they hold, and breaker, pacing and latency
 * states, are only ever replaced, never written, so they are shared).
 */
export function scopeClone(c: ScopeContext): ScopeContext {
  const next = scopeCopy(c);
  const buckets: Partial<Record<RateKind, BucketState>> = {};
  for (const kind in c.buckets) {
    const s = c.buckets[kind as RateKind]!;
    buckets[kind as RateKind] = { level: s.level, at: s.at };
  }
  next.buckets = buckets;
  next.budgets = c.budgets.slice();
  next.budgetExhausted = c.budgetExhausted.slice();
  return next;
}

/** A pure step made of an in-place one: `apply` to a clone of `ctx`, its notices collected. */
function onClone(ctx: ScopeContext, apply: (next: ScopeContext, notices: ScopeNotice[]) => void): Step {
  const next = scopeClone(ctx);
  const notices: ScopeNotice[] = [];
  apply(next, notices);
  return { ctx: next, notices };
}

/** Does an admission hold a slot in this scope (a concurrency limit, or the adaptive one)? */
export function scopeHoldsSlots(limits: ResolvedLimits): boolean {
  return limits.concurrency !== undefined || limits.latency !== undefined;
}

/** Calls in flight this scope allows now: the tighter of `concurrency` and the adaptive latency limit (undefined: no limit). */
export function scopeSlotLimit(ctx: ScopeContext): number | undefined {
  const adaptive = ctx.latencyLimit ? latencyLimitSlots(ctx.latencyLimit) : undefined;
  if (ctx.limits.concurrency === undefined) return adaptive;
  return adaptive === undefined ? ctx.limits.concurrency : Math.min(adaptive, ctx.limits.concurrency);
}

function bucketAmount(b: BucketLimit, d: Demand): number {
  return b.tokens ? d.tokens : 1;
}

/** Is a latency average over its threshold at `now`? */
export function latencyOver(ctx: ScopeContext, now: number, share = 1): boolean {
  const p = ctx.limits.latency;
  if (!p) return false;
  if (p.ttftMs !== undefined && ctx.ttft && averageValue(ctx.ttft, now, p.tauMs) > p.ttftMs * share) return true;
  if (p.itlMs !== undefined && ctx.itl && averageValue(ctx.itl, now, p.tauMs) > p.itlMs * share) return true;
  return false;
}

/** Apply what time alone changes: budget resets, breaker cooldowns, latency decay. Pure: `ctx` itself when time changed nothing. */
export function scopeAdvance(ctx: ScopeContext, now: number): Step {
  if (!advanceDue(ctx, now)) return { ctx, notices: [] };
  return onClone(ctx, (next, notices) => scopeAdvanceInPlace(next, now, notices));
}

/** Would {@link scopeAdvanceInPlace} change anything at `now`? (False on nearly every call.) */
function advanceDue(ctx: ScopeContext, now: number): boolean {
  for (let i = 0; i < ctx.budgets.length; i++) {
    const b = ctx.budgets[i]!;
    if (ctx.limits.budgets[i] && b.resetAt !== null && now >= b.resetAt) return true;
  }
  if (ctx.breaker && ctx.limits.breaker && breakerAdvance(ctx.breaker, ctx.limits.breaker, now).state !== ctx.breaker) return true;
  return ctx.overloaded && !latencyOver(ctx, now);
}

/** `ctx` as time alone would leave it at `now`, for reading: `ctx` itself, or an advanced copy (announcing nothing). */
function advancedView(ctx: ScopeContext, now: number): ScopeContext {
  if (!advanceDue(ctx, now)) return ctx;
  const next = scopeClone(ctx);
  scopeAdvanceInPlace(next, now);
  return next;
}

/** {@link scopeAdvance}, written into `ctx` itself, its notices pushed to `notices` (none made without it). */
export function scopeAdvanceInPlace(ctx: ScopeContext, now: number, notices?: ScopeNotice[]): void {
  for (let i = 0; i < ctx.budgets.length; i++) {
    const p = ctx.limits.budgets[i];
    const b = ctx.budgets[i]!;
    if (!p || b.resetAt === null || now < b.resetAt) continue;
    const r = budgetAdvance(b, p, now);
    if (r.reset) {
      // Each budget resets on its own boundary, once.
      ctx.budgets[i] = r.state;
      ctx.budgetExhausted[i] = false;
      notices?.push({ type: "budget.reset", budget: i, unit: p.unit ?? "cost", periodStart: r.state.periodStart, resetAt: r.state.resetAt });
    }
  }
  if (ctx.breaker && ctx.limits.breaker) {
    const r = breakerAdvance(ctx.breaker, ctx.limits.breaker, now);
    ctx.breaker = r.state;
    if (r.transition) notices?.push({ type: `breaker.${r.transition}` });
  }
  if (ctx.overloaded && !latencyOver(ctx, now)) {
    ctx.overloaded = false;
    notices?.push({ type: "overloaded.off" });
  }
}

/** No hints: shared by every check that has none. */
export const NO_HINTS: ScopeHints = Object.freeze({});

/** The refusal that keeps the caller out longest so far, in one {@link scopeCheck}. */
interface Worst {
  refused: boolean;
  reason: Exclude<Reason, "ok">;
  retryAfterMs: number | undefined;
}

/** Record a refusal retrying after `retryAfterMs` (undefined: never) if it keeps the caller out longer than the worst so far. */
function outrank(worst: Worst, reason: Exclude<Reason, "ok">, retryAfterMs: number | undefined): void {
  // A refusal with no retry time (never) outranks every timed one; else the longest wait wins.
  if (!worst.refused || (worst.retryAfterMs !== undefined && (retryAfterMs === undefined || retryAfterMs > worst.retryAfterMs))) {
    worst.reason = reason;
    worst.retryAfterMs = retryAfterMs;
  }
  worst.refused = true;
}

/** Entries of `limits` this scope reports (buckets, concurrency, budgets). */
function limitCount(limits: ResolvedLimits): number {
  return limits.buckets.length + (limits.concurrency !== undefined ? 1 : 0) + limits.budgets.length;
}

/**
 * Would this scope admit `demand` at `now`? Pure: it reads an advanced copy of the
 * state and changes nothing. On refusal the reason is the limit that keeps the
 * caller out longest, and `retryAfterMs` is exact (before jitter), absent where a
 * retry can never succeed.
 */
export function scopeCheck(ctx0: ScopeContext, demand: Demand, now: number, hints: ScopeHints = NO_HINTS): ScopeVerdict {
  // Read only: the notices of this advance are the commit's to announce.
  const ctx = advancedView(ctx0, now);
  const { limits } = ctx;
  // Sized up front: one entry per bucket, concurrency limit and budget. Every entry has all six
  // fields, in one order (an absent one is undefined, which JSON leaves out): one shape to serialise.
  const info: LimitInfo[] = new Array(limitCount(limits));
  let n = 0;
  const worst: Worst = { refused: false, reason: "rate_limited", retryAfterMs: undefined };

  if (ctx.breaker && limits.breaker) {
    const v = breakerCheck(ctx.breaker, limits.breaker, now);
    if (!v.ok) outrank(worst, "circuit_open", v.retryAfterMs);
  }
  if (limits.latency && latencyOver(ctx, now)) {
    // Averages decay with tau; a retry after a tenth of it sees a visibly lower figure.
    outrank(worst, "overloaded", Math.ceil(limits.latency.tauMs / 10));
  }
  if (limits.latency && ctx.latencyLimit && ctx.held >= latencyLimitSlots(ctx.latencyLimit)) {
    // As many calls in flight as the upstream serves under the threshold: a slot frees with the next report.
    outrank(worst, "overloaded", hints.concurrencyWaitMs ?? 0);
  }
  for (const b of limits.buckets) {
    const v = bucketCheck(ctx.buckets[b.kind] ?? bucketInit(b, now), b, bucketAmount(b, demand), now);
    if (v.ok) {
      info[n++] = { scope: ctx.scope, kind: b.kind, unit: undefined, limit: b.limit, remaining: Math.floor(v.remaining), resetMs: bucketWaitMs(v.remaining, b, 1) };
    } else {
      info[n++] = { scope: ctx.scope, kind: b.kind, unit: undefined, limit: b.limit, remaining: Math.floor(v.remaining), resetMs: v.tooLarge ? undefined : v.retryAfterMs };
      if (v.tooLarge) outrank(worst, "too_large", undefined);
      else outrank(worst, "rate_limited", v.retryAfterMs);
    }
  }
  if (limits.concurrency !== undefined) {
    const free = limits.concurrency - ctx.held;
    info[n++] = { scope: ctx.scope, kind: "concurrency", unit: undefined, limit: limits.concurrency, remaining: Math.max(0, free - 1), resetMs: undefined };
    // Slots free when leases are reported or expire; only the runtime can estimate when.
    if (free <= 0) outrank(worst, "concurrency", limits.concurrency === 0 ? undefined : (hints.concurrencyWaitMs ?? 0));
  }
  for (let i = 0; i < limits.budgets.length; i++) {
    const p = limits.budgets[i]!;
    const b = ctx.budgets[i];
    if (!b) continue;
    const amount = budgetAmount(p, demand);
    const v = budgetCheck(b, p, amount, now);
    const resetMs = b.resetAt === null ? undefined : Math.max(0, b.resetAt - now);
    info[n++] = { scope: ctx.scope, kind: "budget", unit: p.unit ?? "cost", limit: p.limit, remaining: v.ok ? Math.max(0, v.remaining - amount) : v.remaining, resetMs };
    if (!v.ok) outrank(worst, amount > p.limit ? "too_large" : "budget_exhausted", amount > p.limit ? undefined : v.retryAfterMs);
  }
  if (n < info.length) info.length = n;
  let delayMs = 0;
  if (ctx.pacing && limits.adaptive) {
    delayMs = Math.ceil(pacingDelay(ctx.pacing, now));
    // A pacing slot beyond the caller's patience is a refusal, not a long delay.
    const patience = Math.max(demand.waitMs ?? 0, limits.adaptive.maxDelayMs ?? limits.adaptive.maxMs);
    if (delayMs > patience) outrank(worst, "backoff", delayMs - patience);
  }

  if (worst.refused) {
    const { reason: worstReason, retryAfterMs: worstRetryAfterMs } = worst;
    const out: ScopeVerdict = { ok: false, reason: worstReason, limits: info };
    if (worstRetryAfterMs !== undefined && Number.isFinite(worstRetryAfterMs)) out.retryAfterMs = worstRetryAfterMs;
    if (limits.fallback !== undefined && (worstReason === "circuit_open" || worstReason === "overloaded")) out.fallback = limits.fallback;
    return out;
  }
  return { ok: true, delayMs, limits: info };
}

/** Commit an admission (after every scope's check passed at the same `now`). Pure: a new context. */
export function scopeAdmit(ctx: ScopeContext, demand: Demand, held: boolean, now: number): Step {
  return onClone(ctx, (next, notices) => scopeAdmitInPlace(next, demand, held, now, notices));
}

/** {@link scopeAdmit}, written into `ctx` itself (the scope actor's own context), its notices pushed to `notices`. */
export function scopeAdmitInPlace(ctx: ScopeContext, demand: Demand, held: boolean, now: number, notices: ScopeNotice[]): void {
  scopeAdvanceInPlace(ctx, now, notices);
  for (const b of ctx.limits.buckets) bucketTakeInPlace(ownBucket(ctx, b, now), b, bucketAmount(b, demand), now);
  if (held) ctx.held += 1;
  eachBudget(ctx, notices, BUDGET_RESERVE, demand, demand);
  if (ctx.breaker && ctx.limits.breaker) ctx.breaker = breakerOnAdmit(ctx.breaker, ctx.limits.breaker, now);
  if (ctx.pacing && ctx.limits.adaptive) ctx.pacing = pacingTake(ctx.pacing, now);
  ctx.lastActiveAt = now;
}

/** The state of bucket `b` in `ctx`, added full at `now` if the scope has none yet. */
function ownBucket(ctx: ScopeContext, b: BucketLimit, now: number): BucketState {
  let state = ctx.buckets[b.kind];
  if (!state) ctx.buckets[b.kind] = state = bucketInit(b, now);
  return state;
}

const BUDGET_RESERVE = 0;
const BUDGET_SETTLE = 1;
const BUDGET_USE = 2;

/**
 * Apply a budget operation to every budget of `ctx`, in place: reserve `a`, settle the
 * reservation `a` with the actual `b`, or use `a`. A budget that reaches its limit is
 * announced once per crossing, and one that falls back under it is re-armed.
 * (An operation code, not a callback: no closure per call on the admission path.)
 */
function eachBudget(ctx: ScopeContext, notices: ScopeNotice[], op: number, a: Demand | Usage, b: Demand | Usage): void {
  for (let i = 0; i < ctx.budgets.length; i++) {
    const p = ctx.limits.budgets[i];
    const s = ctx.budgets[i]!;
    const out = !p
      ? s
      : op === BUDGET_RESERVE
        ? budgetReserve(s, budgetAmount(p, a))
        : op === BUDGET_SETTLE
          ? budgetSettle(s, budgetAmount(p, a), budgetAmount(p, b))
          : budgetUse(s, budgetAmount(p, a));
    ctx.budgets[i] = out;
    const over = p !== undefined && out.used + out.reserved >= p.limit;
    if (over && !ctx.budgetExhausted[i]) {
      notices.push({ type: "budget.exhausted", budget: i, unit: p.unit ?? "cost", used: out.used, reserved: out.reserved, limit: p.limit });
    }
    if (over !== !!ctx.budgetExhausted[i]) ctx.budgetExhausted[i] = over;
  }
}

/** A lease was reported, or expired unreported (settled at its estimate). Pure: a new context. */
export function scopeSettle(ctx: ScopeContext, s: Settlement, now: number): Step {
  return onClone(ctx, (next, notices) => scopeSettleInPlace(next, s, now, notices));
}

/** {@link scopeSettle}, written into `ctx` itself, its notices pushed to `notices`. */
export function scopeSettleInPlace(ctx: ScopeContext, s: Settlement, now: number, notices: ScopeNotice[]): void {
  scopeAdvanceInPlace(ctx, now, notices);
  const tokenDelta = s.actual.tokens - s.estimate.tokens;
  if (tokenDelta !== 0) {
    for (const b of ctx.limits.buckets) if (b.tokens) bucketAdjustInPlace(ownBucket(ctx, b, now), b, tokenDelta, now);
  }
  eachBudget(ctx, notices, BUDGET_SETTLE, s.estimate, s.actual);
  if (ctx.breaker && ctx.limits.breaker) {
    const r = breakerOnOutcome(ctx.breaker, ctx.limits.breaker, s.outcome, now, s.probe);
    ctx.breaker = r.state;
    if (r.transition) notices.push({ type: `breaker.${r.transition}`, outcome: s.outcome });
  }
  if (ctx.latencyLimit && ctx.limits.latency && s.latency) ctx.latencyLimit = latencyLimitOnReport(ctx.latencyLimit, ctx.limits.latency, s.latency, now);
  if (ctx.pacing && ctx.limits.adaptive && s.outcome !== "expired") {
    const r = pacingOnOutcome(ctx.pacing, ctx.limits.adaptive, s.outcome, s.retryAfterMs, now);
    ctx.pacing = r.state;
    if (r.changed) notices.push({ type: "pacing.changed", intervalMs: r.state.intervalMs });
  }
  if (s.held) ctx.held = Math.max(0, ctx.held - 1);
  if (s.outcome === "expired") ctx.unreported += 1;
  ctx.lastActiveAt = now;
}

/** Would settling change this scope (slots, token correction, budget, breaker, pacing)? */
export function settlementMatters(ctx: ScopeContext, s: Settlement): boolean {
  if (s.held || s.probe) return true;
  const l = ctx.limits;
  if (l.budgets.length > 0 || l.breaker || l.adaptive || l.latency) return true;
  return s.actual.tokens !== s.estimate.tokens && l.buckets.some((b) => b.tokens);
}

/** Usage with no lease behind it (a report for an unknown lease): counted, never dropped. Pure: a new context. */
export function scopeUse(ctx: ScopeContext, usage: Usage, now: number): Step {
  return onClone(ctx, (next, notices) => scopeUseInPlace(next, usage, now, notices));
}

/** {@link scopeUse}, written into `ctx` itself, its notices pushed to `notices`. */
export function scopeUseInPlace(ctx: ScopeContext, usage: Usage, now: number, notices: ScopeNotice[]): void {
  scopeAdvanceInPlace(ctx, now, notices);
  if (usage.tokens > 0) {
    for (const b of ctx.limits.buckets) if (b.tokens) bucketAdjustInPlace(ownBucket(ctx, b, now), b, usage.tokens, now);
  }
  eachBudget(ctx, notices, BUDGET_USE, usage, usage);
  ctx.lastActiveAt = now;
}

/**
 * New latency averages from the report pipeline. Ignored where the limits have no latency
 * policy (the pipeline may still be smoothing reports from before a policy change took it away).
 */
export function scopeLatency(ctx0: ScopeContext, ttft: AverageState | undefined, itl: AverageState | undefined, now: number): Step {
  const adv = scopeAdvance(ctx0, now);
  const notices = adv.notices;
  const ctx = scopeCopy(adv.ctx);
  if (!ctx.limits.latency) return { ctx, notices };
  if (ttft) ctx.ttft = ttft;
  if (itl) ctx.itl = itl;
  const over = latencyOver(ctx, now);
  if (over && !ctx.overloaded) notices.push({ type: "overloaded.on", ...latencyView(ctx, now) });
  if (!over && ctx.overloaded) notices.push({ type: "overloaded.off", ...latencyView(ctx, now) });
  ctx.overloaded = over;
  return { ctx, notices };
}

/** The latency averages as read at `now`. */
export function latencyView(ctx: ScopeContext, now: number): { ttftMs?: number; itlMs?: number } {
  const p = ctx.limits.latency;
  if (!p) return {};
  return {
    ttftMs: ctx.ttft ? averageValue(ctx.ttft, now, p.tauMs) : 0,
    itlMs: ctx.itl ? averageValue(ctx.itl, now, p.tauMs) : 0,
  };
}

/** A new policy: limits change at once, usage stays. */
export function scopePolicy(ctx0: ScopeContext, limits: ResolvedLimits, now: number): Step {
  const adv = scopeAdvance(ctx0, now);
  const ctx = adv.ctx;
  const buckets: Partial<Record<RateKind, BucketState>> = {};
  for (const b of limits.buckets) {
    const old = ctx.limits.buckets.find((o) => o.kind === b.kind);
    const state = ctx.buckets[b.kind];
    buckets[b.kind] = old && state ? bucketRebase(state, old, b, now) : bucketInit(b, now);
  }
  // Budgets are matched to the old ones by unit and period (then by unit), so usage survives a reordering.
  const taken = new Set<number>();
  const match = (p: BudgetPolicy): number => {
    const same = (o: BudgetPolicy) => (o.unit ?? "cost") === (p.unit ?? "cost");
    const exact = ctx.limits.budgets.findIndex((o, i) => !taken.has(i) && same(o) && o.period === p.period && o.periodMs === p.periodMs && !!o.calendar === !!p.calendar);
    return exact >= 0 ? exact : ctx.limits.budgets.findIndex((o, i) => !taken.has(i) && same(o));
  };
  const budgets = limits.budgets.map((p) => {
    const j = match(p);
    if (j < 0 || !ctx.budgets[j]) return budgetInit(p, now);
    taken.add(j);
    return budgetRebase(ctx.budgets[j]!, p, now);
  });
  return {
    ctx: {
      ...ctx,
      limits,
      buckets,
      budgets,
      budgetExhausted: budgets.map((b, i) => b.used + b.reserved >= limits.budgets[i]!.limit),
      breaker: limits.breaker ? (ctx.breaker ?? breakerInit()) : null,
      pacing: limits.adaptive ? (ctx.pacing ?? pacingInit()) : null,
      ttft: limits.latency ? (ctx.ttft ?? averageInit(now)) : null,
      itl: limits.latency ? (ctx.itl ?? averageInit(now)) : null,
      latencyLimit: limits.latency ? (ctx.latencyLimit ?? latencyLimitInit(limits.latency)) : null,
      lastActiveAt: now,
    },
    notices: adv.notices,
  };
}

export type ResetWhat = "breaker" | "usage" | "all";

/** An operator's reset: `breaker` closes it; `usage` zeroes budgets and refills buckets; `all` both, and pacing and averages. */
export function scopeReset(ctx0: ScopeContext, what: ResetWhat, now: number): Step {
  const adv = scopeAdvance(ctx0, now);
  let ctx = adv.ctx;
  const notices = adv.notices;
  if ((what === "breaker" || what === "all") && ctx.breaker) {
    if (ctx.breaker.state !== "closed") notices.push({ type: "breaker.closed", by: "admin" });
    ctx = scopeCopy(ctx);
    ctx.breaker = breakerReset();
  }
  if (what === "usage" || what === "all") {
    const buckets: Partial<Record<RateKind, BucketState>> = {};
    for (const b of ctx.limits.buckets) buckets[b.kind] = bucketInit(b, now);
    const budgets = ctx.budgets.map((b, i) => {
      const p = ctx.limits.budgets[i];
      if (!p) return b;
      const r = budgetResetUsage(b, p, now);
      notices.push({ type: "budget.reset", by: "admin", budget: i, unit: p.unit ?? "cost", periodStart: r.periodStart, resetAt: r.resetAt });
      return r;
    });
    ctx = scopeCopy(ctx);
    ctx.buckets = buckets;
    ctx.budgets = budgets;
    ctx.budgetExhausted = budgets.map(() => false);
    ctx.unreported = 0;
  }
  if (what === "all") {
    ctx = {
      ...ctx,
      pacing: ctx.pacing ? pacingReset() : null,
      ttft: ctx.ttft ? averageInit(now) : null,
      itl: ctx.itl ? averageInit(now) : null,
      overloaded: false,
      latencyLimit: ctx.limits.latency ? latencyLimitInit(ctx.limits.latency) : null,
    };
  }
  const next = scopeCopy(ctx);
  next.lastActiveAt = now;
  return { ctx: next, notices };
}

/**
 * When time alone ends a state that callers wait on: an open breaker's cooldown (it goes
 * half-open) or an exhausted budget's period (it resets); the earliest of them, or null
 * when the scope is in neither. The runtime ticks the scope then, so that
 * `breaker.half_open` and `budget.reset` are announced when they happen, not at the
 * scope's next event. A context without limits (an old snapshot's) is in neither.
 */
export function scopeAwaitedChangeAt(ctx: ScopeContext): number | null {
  if (!ctx.limits) return null;
  let at: number | null = null;
  for (let i = 0; i < ctx.budgets.length; i++) {
    const b = ctx.budgets[i]!;
    if (ctx.budgetExhausted[i] && ctx.limits.budgets[i] && b.resetAt !== null) at = at === null ? b.resetAt : Math.min(at, b.resetAt);
  }
  if (ctx.breaker?.state === "open" && ctx.limits.breaker) at = at === null ? ctx.breaker.until : Math.min(at, ctx.breaker.until);
  return at;
}

/**
 * Would this scope hold nothing but defaults at `now`, once the resets and cooldowns due by
 * then are applied ({@link scopeAdvance})? A sleeping scope for which this holds can be
 * dropped: a new one would be the same. A context without limits (from an old snapshot;
 * the policy gives them on waking) is never taken for one.
 */
export function scopeIsPristineAt(ctx: ScopeContext, now: number): boolean {
  if (!ctx.limits) return false;
  return scopeIsPristine(scopeAdvance(ctx, now).ctx, now);
}

/** Does this scope hold nothing but defaults (safe to drop when idle)? */
export function scopeIsPristine(ctx: ScopeContext, now: number): boolean {
  if (ctx.held > 0) return false;
  if (ctx.budgets.some((b) => b.used > 0 || b.reserved > 0)) return false;
  if (ctx.breaker && ctx.breaker.state !== "closed") return false;
  if (ctx.pacing && ctx.pacing.intervalMs > 0) return false;
  if (latencyOver(ctx, now, 0.01)) return false;
  for (const b of ctx.limits.buckets) {
    const s = ctx.buckets[b.kind];
    if (s && s.level + (now - s.at) * b.ratePerMs < b.burst) return false;
  }
  return true;
}
