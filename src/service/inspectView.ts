import { type PolicyDocument, effectivePolicy, parseScope } from "../../machines/policy.js";
import { latencyView, type ScopeContext } from "../../machines/scope.js";
import { latencyLimitSlots } from "../../machines/latencyLimit.js";
import { bucketLevel } from "../../machines/tokenBucket.js";
import { type ScopeActor, scopeStateOf } from "../registry/ScopeRegistry.js";

/**
 * The reply to `<p>.inspect` for one scope: the actor's state value and context
 * as JSON, the policy that applies, and figures derived at `now` (bucket levels,
 * budget usage and next reset, latency averages) so nobody has to redo the maths.
 */
export function inspectScope(scope: string, actor: ScopeActor | undefined, policy: PolicyDocument, now: number): Record<string, unknown> {
  const { kind, value } = parseScope(scope);
  const effective = effectivePolicy(policy, kind, value);
  if (!actor) return { scope, live: false, policy: effective };
  // Bring time-driven changes (resets, cooldowns) into the snapshot before showing it.
  actor.send({ type: "tick", now });
  const snap = actor.getSnapshot();
  return { scope, live: true, state: scopeStateOf(actor), context: snap.context, policy: effective, view: derivedView(snap.context, now) };
}

function derivedView(ctx: ScopeContext, now: number): Record<string, unknown> {
  const view: Record<string, unknown> = {};
  const buckets: Record<string, unknown> = {};
  for (const b of ctx.limits.buckets) {
    const s = ctx.buckets[b.kind];
    buckets[b.kind] = { limit: b.limit, burst: b.burst, remaining: s ? Math.floor(bucketLevel(s, b, now)) : b.burst };
  }
  if (ctx.limits.buckets.length > 0) view.buckets = buckets;
  if (ctx.limits.concurrency !== undefined) view.concurrency = { limit: ctx.limits.concurrency, held: ctx.held };
  if (ctx.limits.budgets.length > 0) {
    view.budgets = ctx.limits.budgets.map((p, i) => {
      const b = ctx.budgets[i]!;
      return {
        unit: p.unit ?? "cost",
        limit: p.limit,
        used: b.used,
        reserved: b.reserved,
        remaining: Math.max(0, p.limit - b.used - b.reserved),
        periodStart: new Date(b.periodStart).toISOString(),
        nextReset: b.resetAt === null ? null : new Date(b.resetAt).toISOString(),
        // Leases that expired unreported and were settled at their estimate.
        unreported: ctx.unreported,
      };
    });
    // The first budget again, for the common case of one.
    view.budget = (view.budgets as unknown[])[0];
  }
  if (ctx.breaker) view.breaker = ctx.breaker.state;
  if (ctx.pacing) view.pacing = { intervalMs: ctx.pacing.intervalMs, delayMs: Math.max(0, Math.ceil(ctx.pacing.nextSlotAt - now)) };
  if (ctx.limits.latency) {
    const limit = ctx.latencyLimit ? latencyLimitSlots(ctx.latencyLimit) : undefined;
    view.latency = { ...latencyView(ctx, now), overloaded: ctx.overloaded, concurrencyLimit: limit, inFlight: ctx.held };
  }
  return view;
}
