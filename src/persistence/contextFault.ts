/**
 * Whether a context read back from a snapshot is one sluice could have written. The
 * bucket is outside sluice's control (anyone with access to the KV bucket can write it,
 * and a snapshot of another version may lack a field), and a context that is not one
 * would throw in the actor that wakes with it, failing every admission of the turn
 * that names its scope. So a restore checks each, and leaves out what fails.
 *
 * Checked by hand, not with zod: a restart reads millions of them, and this takes well
 * under a microsecond each. The limits are checked apart, once per distinct limits
 * (`resolvedLimitsSchema`), before this is called with them.
 */
import { RATE_KINDS, type ResolvedLimits } from "../../machines/policy.js";

const RATE_KIND_SET: ReadonlySet<string> = new Set(RATE_KINDS);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isTime = (v: unknown): boolean => v === null || isNumber(v);

/** The first field of `o` named in `fields` that is not a finite number, or undefined. */
function notNumbers(o: Record<string, unknown>, fields: readonly string[]): string | undefined {
  for (const f of fields) if (!isNumber(o[f])) return f;
  return undefined;
}

function breakerFault(b: unknown): string | undefined {
  if (!isObject(b)) return "breaker";
  switch (b.state) {
    case "closed": {
      if (!Array.isArray(b.window)) return "breaker.window";
      for (let i = 0; i < b.window.length; i++) {
        const w: unknown = b.window[i];
        if (!isObject(w)) return `breaker.window.${i}`;
        const f = notNumbers(w, ["start", "total", "failures"]);
        if (f) return `breaker.window.${i}.${f}`;
      }
      return undefined;
    }
    case "open": {
      const f = notNumbers(b, ["openedAt", "until"]);
      return f && `breaker.${f}`;
    }
    case "halfOpen": {
      const f = notNumbers(b, ["inFlight", "succeeded"]);
      return f && `breaker.${f}`;
    }
    default:
      return "breaker.state";
  }
}

/**
 * `field` of `c` is there (and passes `check`) where its limits ask for it (`required`);
 * elsewhere it may be null. (A state the limits no longer ask for is harmless: the
 * steps read it only under the limit that needs it.)
 */
function optionalFault(c: Record<string, unknown>, field: string, required: boolean, check: (v: Record<string, unknown>) => string | undefined): string | undefined {
  const v = c[field];
  if (v === null) return required ? field : undefined;
  if (!isObject(v)) return field;
  const f = check(v);
  return f && `${field}.${f}`;
}

/**
 * Why `ctx` is not a context of `scope` as sluice writes one (the first wrong field),
 * or undefined if it is one. `limits`: those it will wake with (its own, already checked,
 * or the policy's for a context stored without them); undefined: its state is checked alone.
 */
export function contextFault(ctx: unknown, scope: string, limits: ResolvedLimits | undefined): string | undefined {
  if (!isObject(ctx)) return "ctx";
  if (ctx.scope !== scope) return "scope";
  const buckets = ctx.buckets;
  if (!isObject(buckets)) return "buckets";
  for (const kind in buckets) {
    const b = buckets[kind];
    if (!RATE_KIND_SET.has(kind) || !isObject(b)) return `buckets.${kind}`;
    const f = notNumbers(b, ["level", "at"]);
    if (f) return `buckets.${kind}.${f}`;
  }
  if (limits) for (const b of limits.buckets) if (!Object.hasOwn(buckets, b.kind)) return `buckets.${b.kind}`;
  if (!isNumber(ctx.held)) return "held";
  const budgets = ctx.budgets;
  if (!Array.isArray(budgets) || (limits && budgets.length !== limits.budgets.length)) return "budgets";
  for (let i = 0; i < budgets.length; i++) {
    const b: unknown = budgets[i];
    if (!isObject(b)) return `budgets.${i}`;
    const f = notNumbers(b, ["used", "reserved", "periodStart"]) ?? (isTime(b.resetAt) ? undefined : "resetAt");
    if (f) return `budgets.${i}.${f}`;
  }
  const exhausted = ctx.budgetExhausted;
  if (!Array.isArray(exhausted) || exhausted.length !== budgets.length || !exhausted.every((e) => typeof e === "boolean")) return "budgetExhausted";
  return (
    (ctx.breaker === null ? (limits?.breaker !== undefined ? "breaker" : undefined) : breakerFault(ctx.breaker)) ??
    optionalFault(ctx, "pacing", limits?.adaptive !== undefined, (p) => notNumbers(p, ["intervalMs", "okStreak", "nextSlotAt"]) ?? (isTime(p.grownAt) ? undefined : "grownAt")) ??
    optionalFault(ctx, "ttft", limits?.latency !== undefined, (a) => notNumbers(a, ["s", "w", "at"])) ??
    optionalFault(ctx, "itl", limits?.latency !== undefined, (a) => notNumbers(a, ["s", "w", "at"])) ??
    optionalFault(ctx, "latencyLimit", limits?.latency !== undefined, (l) => notNumbers(l, ["limit"]) ?? (isTime(l.cutAt) ? undefined : "cutAt")) ??
    (typeof ctx.overloaded !== "boolean" ? "overloaded" : undefined) ??
    (!isNumber(ctx.unreported) ? "unreported" : undefined) ??
    (!isNumber(ctx.lastActiveAt) ? "lastActiveAt" : undefined)
  );
}
