/**
 * One pass over the live scope actors, read-only, that gathers what metrics and
 * the dashboard show: actors per kind, each model's breaker, pacing and latency
 * averages, budget usage summed per kind, the budgets of scopes the policy names,
 * and the scopes that have used most of their budget.
 *
 * Figures are read as of `now`: a breaker whose cooldown has passed reads
 * half-open, a budget whose period has ended reads reset, averages have decayed.
 * That is the same pure `scopeAdvance` the actors apply on their next event; the
 * actors themselves are not touched.
 */
import type { PolicyDocument } from "../../machines/policy.js";
import { effectivePolicy, resolveLimits } from "../../machines/policy.js";
import { type ScopeContext, latencyView, scopeAdvance } from "../../machines/scope.js";
import type { Clock } from "../clock.js";
import type { ScopeActor } from "../registry/ScopeRegistry.js";
import { OTHER_LABEL } from "./labelCap.js";

/** What a scan reads from: a running service's registry and clock (a `SluiceService` is one). */
export interface ScopeSource {
  readonly registry: {
    readonly policy: PolicyDocument;
    readonly size: number;
    entries(): IterableIterator<[string, ScopeActor]>;
  };
  readonly clock: Pick<Clock, "now">;
}

/** A breaker's state as metrics number it: 0 closed, 1 half-open, 2 open. */
export const BREAKER_LEVEL = { closed: 0, halfOpen: 1, open: 2 } as const;
export type BreakerName = keyof typeof BREAKER_LEVEL;

/** One model (or, for {@link OTHER_LABEL}, the worst of the models past the label cap). */
export interface ModelView {
  /** The model's label: its name, or `other`. */
  model: string;
  /** Breaker state; `closed` for a model without a breaker. */
  breaker: BreakerName;
  /** Whether the policy gives the model a breaker. */
  hasBreaker: boolean;
  /** While open: when half-open begins, ms epoch. */
  openUntil?: number;
  /** Pacing interval, ms; `null` without adaptive pacing in the policy. */
  pacingMs: number | null;
  /** TTFT average, ms; `null` without a latency policy. */
  ttftMs: number | null;
  /** ITL average, ms; `null` without a latency policy. */
  itlMs: number | null;
  /** Thresholds of the averages, ms, where the policy sets them. */
  ttftLimitMs?: number;
  itlLimitMs?: number;
  /** A latency average is over its threshold (admissions are shed). */
  overloaded: boolean;
  /** Concurrency slots held, and the limit where there is one. */
  held: number;
  concurrency?: number;
  /** Model named in rejections while the breaker is open or the model is overloaded. */
  fallback?: string;
}

/** One scope's budget as read at `now`. */
export interface BudgetRow {
  scope: string;
  kind: string;
  unit: string;
  used: number;
  reserved: number;
  limit: number;
  /** (used + reserved) / limit; 1 for a zero limit. */
  share: number;
  /** Next reset, ms epoch; `null` if it never resets. */
  resetAt: number | null;
}

/** Budgets of one scope kind and unit, summed. */
export interface BudgetSum {
  kind: string;
  unit: string;
  used: number;
  reserved: number;
  limit: number;
  /** Number of live scopes summed. */
  scopes: number;
}

/** The result of one pass. */
export interface ScopeScan {
  /** Domain time the figures are read at, ms epoch. */
  now: number;
  /** How long the pass took, ms. */
  tookMs: number;
  /** Live actors by scope kind (kinds past the cap: `other`). */
  actors: Map<string, number>;
  /** Model views by label, in the order first met. */
  models: Map<string, ModelView>;
  /** Budget sums by `kind` + `unit`. */
  budgets: BudgetSum[];
  /** Budgets of live scopes that the policy names in `overrides` (at most {@link ScanOptions.maxNamed}). */
  named: BudgetRow[];
  /** The scopes with the highest budget share, highest first (at most {@link ScanOptions.top}). */
  top: BudgetRow[];
}

/** Options of {@link scanScopes}. */
export interface ScanOptions {
  /** Label of a model name (bounded); default: the name itself. */
  modelLabel?: (model: string) => string;
  /** Most distinct scope kinds counted by name; the rest count as `other`. Default 100. */
  maxKinds?: number;
  /** Length of {@link ScopeScan.top}. Default 10. */
  top?: number;
  /** Most override-named scopes reported one by one. Default 1000. */
  maxNamed?: number;
}

/** Defaults of {@link ScanOptions}. */
export const DEFAULT_SCAN = { maxKinds: 100, top: 10, maxNamed: 1000 } as const;

/** Scope names (`kind:value`) that the policy names in `overrides`, at most `max`. */
export function namedScopes(policy: PolicyDocument, max: number): Set<string> {
  const out = new Set<string>();
  for (const [kind, kp] of Object.entries(policy.scopes)) {
    for (const value of Object.keys(kp.overrides ?? {})) {
      if (out.size >= max) return out;
      out.add(`${kind}:${value}`);
    }
  }
  return out;
}

/** Read every live actor once. */
export function scanScopes(source: ScopeSource, opts: ScanOptions = {}): ScopeScan {
  const started = performance.now();
  const now = source.clock.now();
  const modelLabel = opts.modelLabel ?? ((m: string) => m);
  const maxKinds = opts.maxKinds ?? DEFAULT_SCAN.maxKinds;
  const topN = opts.top ?? DEFAULT_SCAN.top;
  const named = namedScopes(source.registry.policy, opts.maxNamed ?? DEFAULT_SCAN.maxNamed);

  const actors = new Map<string, number>();
  const models = new Map<string, ModelView>();
  const budgets = new Map<string, BudgetSum>();
  const namedRows: BudgetRow[] = [];
  const top: BudgetRow[] = [];

  for (const [scope, actor] of source.registry.entries()) {
    const colon = scope.indexOf(":");
    const kind = colon < 0 ? scope : scope.slice(0, colon);
    const kindLabel = actors.has(kind) || actors.size < maxKinds ? kind : OTHER_LABEL;
    actors.set(kindLabel, (actors.get(kindLabel) ?? 0) + 1);

    const raw = actor.getSnapshot().context;
    const isModel = kind === "model";
    // Most scopes (a key with a request rate) have nothing to show here; skip the advance for them.
    if (!isModel && raw.budgets.length === 0) continue;
    const ctx = scopeAdvance(raw, now).ctx;

    if (isModel) mergeModel(models, modelView(modelLabel(scope.slice(colon + 1)), ctx, now));

    for (let i = 0; i < ctx.limits.budgets.length; i++) {
      const b = ctx.limits.budgets[i]!;
      const state = ctx.budgets[i]!;
      const unit = b.unit ?? "cost";
      const sumKey = `${kindLabel}\u0000${unit}`;
      let sum = budgets.get(sumKey);
      if (!sum) budgets.set(sumKey, (sum = { kind: kindLabel, unit, used: 0, reserved: 0, limit: 0, scopes: 0 }));
      sum.used += state.used;
      sum.reserved += state.reserved;
      sum.limit += b.limit;
      sum.scopes++;
      const spent = state.used + state.reserved;
      const share = b.limit > 0 ? spent / b.limit : 1;
      const isNamed = named.has(scope);
      if (isNamed || top.length < topN || share > top[top.length - 1]!.share) {
        const row: BudgetRow = { scope, kind, unit, used: state.used, reserved: state.reserved, limit: b.limit, share, resetAt: state.resetAt };
        if (isNamed) namedRows.push(row);
        insertTop(top, row, topN);
      }
    }
  }
  namedRows.sort((a, b) => (a.scope < b.scope ? -1 : a.scope > b.scope ? 1 : 0));
  return { now, tookMs: performance.now() - started, actors, models, budgets: [...budgets.values()], named: namedRows, top };
}

function modelView(model: string, ctx: ScopeContext, now: number): ModelView {
  const lat = latencyView(ctx, now);
  const view: ModelView = {
    model,
    breaker: ctx.breaker?.state ?? "closed",
    hasBreaker: ctx.breaker !== null,
    pacingMs: ctx.pacing ? ctx.pacing.intervalMs : null,
    ttftMs: ctx.limits.latency ? lat.ttftMs ?? 0 : null,
    itlMs: ctx.limits.latency ? lat.itlMs ?? 0 : null,
    overloaded: ctx.overloaded,
    held: ctx.held,
  };
  if (ctx.breaker?.state === "open") view.openUntil = ctx.breaker.until;
  if (ctx.limits.latency?.ttftMs !== undefined) view.ttftLimitMs = ctx.limits.latency.ttftMs;
  if (ctx.limits.latency?.itlMs !== undefined) view.itlLimitMs = ctx.limits.latency.itlMs;
  if (ctx.limits.concurrency !== undefined) view.concurrency = ctx.limits.concurrency;
  if (ctx.limits.fallback !== undefined) view.fallback = ctx.limits.fallback;
  return view;
}

/**
 * A model the scan holds no actor for (asleep, or first used after the scan was
 * taken), as its policy describes it: a breaker is shown closed and averages empty,
 * but whether it has a breaker, its thresholds and its fallback come from the policy.
 */
export function policyModelView(policy: PolicyDocument, model: string): ModelView {
  const limits = resolveLimits(effectivePolicy(policy, "model", model));
  const view: ModelView = {
    model,
    breaker: "closed",
    hasBreaker: limits.breaker !== undefined,
    pacingMs: limits.adaptive ? 0 : null,
    ttftMs: limits.latency ? 0 : null,
    itlMs: limits.latency ? 0 : null,
    overloaded: false,
    held: 0,
  };
  if (limits.latency?.ttftMs !== undefined) view.ttftLimitMs = limits.latency.ttftMs;
  if (limits.latency?.itlMs !== undefined) view.itlLimitMs = limits.latency.itlMs;
  if (limits.concurrency !== undefined) view.concurrency = limits.concurrency;
  if (limits.fallback !== undefined) view.fallback = limits.fallback;
  return view;
}

/** Models past the label cap share the label `other`: it shows the worst of them. */
function mergeModel(models: Map<string, ModelView>, v: ModelView): void {
  const prev = models.get(v.model);
  if (!prev) {
    models.set(v.model, v);
    return;
  }
  const worse = BREAKER_LEVEL[v.breaker] > BREAKER_LEVEL[prev.breaker];
  models.set(v.model, {
    ...prev,
    breaker: worse ? v.breaker : prev.breaker,
    hasBreaker: prev.hasBreaker || v.hasBreaker,
    openUntil: worse ? v.openUntil : prev.openUntil,
    pacingMs: maxOrNull(prev.pacingMs, v.pacingMs),
    ttftMs: maxOrNull(prev.ttftMs, v.ttftMs),
    itlMs: maxOrNull(prev.itlMs, v.itlMs),
    overloaded: prev.overloaded || v.overloaded,
    held: prev.held + v.held,
  });
}

function maxOrNull(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.max(a, b);
}

/** Insert into a list kept sorted by share (highest first) and at most `n` long. */
function insertTop(top: BudgetRow[], row: BudgetRow, n: number): void {
  if (n <= 0) return;
  if (top.length >= n && row.share <= top[top.length - 1]!.share) return;
  let i = top.length;
  while (i > 0 && top[i - 1]!.share < row.share) i--;
  top.splice(i, 0, row);
  if (top.length > n) top.pop();
}

/** Options of {@link ScopeScanner}. */
export interface ScopeScannerOptions extends ScanOptions {
  /** A scan younger than this is reused, ms. Default 250. */
  maxAgeMs?: number;
  /**
   * A scan is reused for at least this many times its own duration, so that scanning
   * millions of actors never takes more than about 1/`costFactor` of the time. Default 10.
   */
  costFactor?: number;
}

/**
 * Scans on demand and shares the result between the readers that ask within a
 * short time (a Prometheus scrape's gauges, the dashboard's tick): the live
 * actors are iterated at most once per scrape.
 */
export class ScopeScanner {
  private last?: { scan: ScopeScan; at: number };
  private readonly maxAgeMs: number;
  private readonly costFactor: number;

  constructor(
    private readonly source: ScopeSource,
    private readonly opts: ScopeScannerOptions = {},
  ) {
    this.maxAgeMs = opts.maxAgeMs ?? 250;
    this.costFactor = opts.costFactor ?? 10;
  }

  /** A scan no older than the allowed age. */
  get(): ScopeScan {
    const t = performance.now();
    const last = this.last;
    if (last && t - last.at < Math.max(this.maxAgeMs, last.scan.tookMs * this.costFactor)) return last.scan;
    const scan = scanScopes(this.source, this.opts);
    this.last = { scan, at: t };
    return scan;
  }

  /** Forget the cached scan: the next {@link get} scans. */
  invalidate(): void {
    this.last = undefined;
  }
}
