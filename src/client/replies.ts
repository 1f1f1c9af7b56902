/** The replies of sluice's inspect and admin subjects, as the client returns them. */
import type { ScopePolicy } from "../../machines/policy.js";

/** Figures derived at the moment of an inspect: each part present only where the scope has that limit. */
export interface ScopeView {
  /** Rate buckets by kind (`rpm`, `tpm`, …): configured rate, capacity, and units left (negative: debt). */
  buckets?: Record<string, { limit: number; burst: number; remaining: number }>;
  /** Concurrency slots: the limit and how many live leases hold one. */
  concurrency?: { limit: number; held: number };
  /** Budget usage in its `unit`, with ISO timestamps of the period (`nextReset` null: never resets). */
  /** The first budget (the common case of one). */
  budget?: BudgetView;
  /** Every budget of the scope, in policy order. */
  budgets?: BudgetView[];
  /** Breaker state: `closed`, `open` or `halfOpen`. */
  breaker?: string;
  /** Adaptive pacing: the interval between admissions and the delay a new one would get, ms. */
  pacing?: { intervalMs: number; delayMs: number };
  /** Load-shedding averages, ms, and whether the model is shedding. */
  latency?: { ttftMs?: number; itlMs?: number; overloaded: boolean };
}

/** The reply to `inspect(scope)`. */
export interface ScopeInspection {
  /** The scope, `kind:value`. */
  scope: string;
  /** Whether an actor exists for it; a scope that was never used is not live. */
  live: boolean;
  /** The actor's XState state value (live scopes only). */
  state?: unknown;
  /** The actor's raw context (live scopes only); its shape may change between versions. */
  context?: unknown;
  /** The effective policy of the scope, after defaults and overrides. */
  policy: ScopePolicy;
  /** Derived figures (live scopes only). */
  view?: ScopeView;
}

/** The reply to `list(prefix)`: live scopes whose name starts with the prefix, sorted. */
export interface ScopeList {
  /** Each matching scope with its XState state value. */
  scopes: { scope: string; state: unknown }[];
  /** True when more scopes matched than the limit allowed. */
  truncated: boolean;
}

/** What `reset()` clears: the breaker, the usage (buckets and budget), or both plus pacing and latency averages. */
export type ResetWhat = "breaker" | "usage" | "all";

/** One budget of a scope as inspect shows it. */
export interface BudgetView {
  unit: string;
  limit: number;
  used: number;
  reserved: number;
  remaining: number;
  periodStart: string;
  nextReset: string | null;
  /** Leases settled at their estimate because they expired unreported. */
  unreported: number;
}
