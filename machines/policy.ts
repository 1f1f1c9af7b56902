/**
 * Policy types: the shape of the policy document (PROTOCOL.md "Policy") and the
 * per-scope limits resolved from it. Pure data; validation lives in
 * `src/protocol/policySchema.ts`, which is checked against these types.
 */

/** Request-counting rate kinds. */
export const REQUEST_RATES = ["rps", "rpm", "rph"] as const;
/** Token-counting rate kinds. */
export const TOKEN_RATES = ["tps", "tpm", "tph"] as const;
export const RATE_KINDS = [...REQUEST_RATES, ...TOKEN_RATES] as const;
export type RateKind = (typeof RATE_KINDS)[number];

/** Refill period of each rate kind, in milliseconds. */
export const RATE_PERIOD_MS: Record<RateKind, number> = {
  rps: 1_000,
  rpm: 60_000,
  rph: 3_600_000,
  tps: 1_000,
  tpm: 60_000,
  tph: 3_600_000,
};

export type BudgetUnit = "cost" | "tokens" | "requests";
export type CalendarPeriod = "hour" | "day" | "week" | "month";

/** A spend, token or call quota with optional resets. */
export interface BudgetPolicy {
  /** The quota, in `unit`s. */
  limit: number;
  /** What is counted. Default `cost`. */
  unit?: BudgetUnit;
  /** Reset period. With `calendar: true` resets fall on UTC boundaries (weeks start Monday). */
  period?: CalendarPeriod;
  /** Align `period` to UTC calendar boundaries. Default false: rolling, a period after the last reset. */
  calendar?: boolean;
  /** Rolling period in ms (alternative to `period`). No period at all: the budget never resets. */
  periodMs?: number;
}

/** Circuit breaker settings. */
export interface BreakerPolicy {
  /** Failure share in the window that opens the breaker, 0..1. */
  errorRate: number;
  /** Sliding window length, ms. */
  windowMs: number;
  /** Reported outcomes needed in the window before the breaker may open. */
  minRequests: number;
  /** How long the breaker stays open, ms. */
  cooldownMs: number;
  /** Calls admitted at once while half-open. */
  probes: number;
  /** Count upstream 429s as failures. Default true. */
  countRateLimited?: boolean;
}

/** Adaptive pacing on upstream 429s. */
export interface AdaptivePolicy {
  /** First pacing interval after a 429, ms. */
  baseMs: number;
  /** Cap of the interval, ms. */
  maxMs: number;
  /** Growth factor on each further 429. */
  factor: number;
  /** Shrink factor after `recoverAfter` consecutive ok reports (0..1). */
  recovery: number;
  /** Consecutive ok reports needed to shrink once. */
  recoverAfter: number;
  /** Longest `delayMs` handed to a caller that does not wait in sluice; beyond it: reject `backoff`. Default `maxMs`. */
  maxDelayMs?: number;
}

/** Load shedding on latency averages. */
export interface LatencyPolicy {
  /** Threshold of the time-to-first-token average, ms. */
  ttftMs?: number;
  /** Threshold of the inter-token latency average, ms. */
  itlMs?: number;
  /** Time constant of the averages, ms. */
  tauMs: number;
  /** Adaptive concurrency limit (see latencyLimit.ts): where it starts, calls in flight. Default 16. */
  initialConcurrency?: number;
  /** Lowest the adaptive limit goes. Default 1. */
  minConcurrency?: number;
  /** Highest the adaptive limit goes. Default 1000. */
  maxConcurrency?: number;
}

/** The limits of one scope. Every field is optional: a field left out is no limit. */
export interface ScopePolicy {
  rps?: number;
  rpm?: number;
  rph?: number;
  tps?: number;
  tpm?: number;
  tph?: number;
  /** Capacity of the request buckets (rps/rpm/rph) that have no bucket-specific burst. */
  burst?: number;
  rpsBurst?: number;
  rpmBurst?: number;
  rphBurst?: number;
  tpsBurst?: number;
  tpmBurst?: number;
  tphBurst?: number;
  /** At most this many unexpired leases at once. */
  concurrency?: number;
  /** One budget, or several (say tokens per day and requests per hour), each counted and reset on its own. */
  budget?: BudgetPolicy | BudgetPolicy[];
  breaker?: BreakerPolicy;
  adaptive?: AdaptivePolicy;
  latency?: LatencyPolicy;
  /** Model named in `circuit_open` / `overloaded` rejections. */
  fallback?: string;
  /** Further scopes (kind → value) every admission of this scope also counts against. */
  parents?: Record<string, string>;
}

/** An override may also remove a default limit by setting it to `null`. */
export type ScopeOverride = { [K in keyof ScopePolicy]?: ScopePolicy[K] | null };

export interface ScopeKindPolicy {
  default?: ScopePolicy;
  overrides?: Record<string, ScopeOverride>;
}

/** Multiplier range applied to every `retryAfterMs` so that rejected callers spread out. */
export interface JitterPolicy {
  min: number;
  max: number;
}

/** The policy document. */
export interface PolicyDocument {
  /** Lifetime of a lease, ms. Default 60000. */
  leaseTtlMs?: number;
  /** Jitter of `retryAfterMs`. Default { min: 1, max: 1.6 }. */
  jitter?: JitterPolicy;
  scopes: Record<string, ScopeKindPolicy>;
}

export const DEFAULT_LEASE_TTL_MS = 60_000;
export const DEFAULT_JITTER: JitterPolicy = { min: 1, max: 1.6 };

/** A rate bucket's resolved settings. */
export interface BucketLimit {
  kind: RateKind;
  /** Units per period. */
  limit: number;
  /** Capacity. */
  burst: number;
  /** Refill rate, units per ms. */
  ratePerMs: number;
  /** `true` for token buckets, `false` for request buckets. */
  tokens: boolean;
}

/** The limits of one scope after defaults and overrides are merged. */
export interface ResolvedLimits {
  buckets: BucketLimit[];
  concurrency?: number;
  /** The scope's budgets (empty: none), in policy order. */
  budgets: BudgetPolicy[];
  breaker?: BreakerPolicy;
  adaptive?: AdaptivePolicy;
  latency?: LatencyPolicy;
  fallback?: string;
  parents?: Record<string, string>;
}

/** Split `kind:value` (the value may itself hold `:`). */
export function parseScope(scope: string): { kind: string; value: string } {
  const i = scope.indexOf(":");
  return i < 0 ? { kind: scope, value: "" } : { kind: scope.slice(0, i), value: scope.slice(i + 1) };
}

/** Merge a kind's default with a value's override; nested objects merge one level deep, `null` removes. */
export function effectivePolicy(doc: PolicyDocument, kind: string, value: string): ScopePolicy {
  // Own properties only: a scope value such as `__proto__` must not reach Object.prototype.
  const kp = Object.hasOwn(doc.scopes, kind) ? doc.scopes[kind] : undefined;
  if (!kp) return {};
  const base: Record<string, unknown> = { ...(kp.default ?? {}) };
  const ov = kp.overrides && Object.hasOwn(kp.overrides, value) ? kp.overrides[value] : undefined;
  if (ov) {
    for (const [field, v] of Object.entries(ov)) {
      if (v === null) delete base[field];
      else if (typeof v === "object" && !Array.isArray(v) && typeof base[field] === "object" && base[field] !== null && !Array.isArray(base[field])) {
        base[field] = { ...(base[field] as object), ...v };
      } else base[field] = v;
    }
  }
  return base as ScopePolicy;
}

/**
 * Do these limits give a scope anything to keep? Without rates, budgets, concurrency, a
 * breaker, pacing or latency averages, a scope never refuses and never holds state: it is
 * back at its defaults after every call.
 */
export function limitsHoldState(l: ResolvedLimits): boolean {
  return l.buckets.length > 0 || l.budgets.length > 0 || l.concurrency !== undefined || l.breaker !== undefined || l.adaptive !== undefined || l.latency !== undefined;
}

/** Resolve a scope's policy into the limits its actor enforces. */
export function resolveLimits(policy: ScopePolicy): ResolvedLimits {
  const buckets: BucketLimit[] = [];
  for (const kind of RATE_KINDS) {
    const limit = policy[kind];
    if (limit === undefined) continue;
    const tokens = kind.startsWith("t");
    const specific = policy[`${kind}Burst` as const];
    const burst = specific ?? (tokens ? undefined : policy.burst) ?? limit;
    buckets.push({ kind, limit, burst, ratePerMs: limit / RATE_PERIOD_MS[kind], tokens });
  }
  const budgets = policy.budget === undefined ? [] : Array.isArray(policy.budget) ? policy.budget : [policy.budget];
  const out: ResolvedLimits = { buckets, budgets };
  if (policy.concurrency !== undefined) out.concurrency = policy.concurrency;
  if (policy.breaker) out.breaker = policy.breaker;
  if (policy.adaptive) out.adaptive = policy.adaptive;
  if (policy.latency) out.latency = policy.latency;
  if (policy.fallback !== undefined) out.fallback = policy.fallback;
  if (policy.parents) out.parents = policy.parents;
  return out;
}
