/**
 * The scope actor: one per scope in use (`key:acme-prod`, `model:gpt-4o`, …).
 * Every mutation of a scope's limiter, budget, breaker and pacing state goes
 * through this machine's events, one at a time, so no update is ever lost.
 * Time comes in each event (`now`): the machine has no delays of its own, so a
 * persisted snapshot restores exactly (refills, cooldowns and resets are derived
 * from timestamps in context).
 *
 * The state value mirrors the breaker: `closed`, `open` or `halfOpen` (scopes
 * without a breaker stay `closed`).
 */
import { enqueueActions, setup } from "xstate";
import type { AverageState } from "./latencyAverage.js";
import type { ResolvedLimits } from "./policy.js";
import {
  type Demand,
  type ResetWhat,
  type ScopeContext,
  type ScopeNotice,
  type Settlement,
  type Step,
  type Usage,
  scopeAdmit,
  scopeAdmitInPlace,
  scopeAdvance,
  scopeAdvanceInPlace,
  scopeInit,
  scopeLatency,
  scopePolicy,
  scopeReset,
  scopeSettle,
  scopeSettleInPlace,
  scopeUse,
  scopeUseInPlace,
} from "./scope.js";

export type ScopeEvent =
  /** Commit an admission every scope has checked. */
  | { type: "admit"; demand: Demand; held: boolean; now: number }
  /** A lease was reported or expired. */
  | { type: "settle"; settlement: Settlement; now: number }
  /** Usage with no lease (unknown or forgotten lease). */
  | { type: "use"; usage: Usage; now: number }
  /** Latency averages from the report pipeline. */
  | { type: "latency"; ttft?: AverageState; itl?: AverageState; now: number }
  /** The policy changed. */
  | { type: "policy"; limits: ResolvedLimits; now: number }
  /** An operator reset. */
  | { type: "reset"; what: ResetWhat; now: number }
  /** Time passed: apply resets and cooldowns that fell due. */
  | { type: "tick"; now: number };

/** Several of the events above, applied in order as one actor event (the same as sending them one by one). */
export type ScopeBatchEvent = {
  type: "batch";
  events: ScopeEvent[];
};

export interface ScopeInput {
  scope: string;
  limits: ResolvedLimits;
  now: number;
  /** A persisted context to resume from. */
  restore?: ScopeContext;
}

/** Apply one domain event to a scope's context. Pure: a new context when anything changed, the input untouched. */
export function scopeStep(ctx: ScopeContext, e: ScopeEvent): Step {
  switch (e.type) {
    case "admit":
      return scopeAdmit(ctx, e.demand, e.held, e.now);
    case "settle":
      return scopeSettle(ctx, e.settlement, e.now);
    case "use":
      return scopeUse(ctx, e.usage, e.now);
    case "latency":
      return scopeLatency(ctx, e.ttft, e.itl, e.now);
    case "policy":
      return scopePolicy(ctx, e.limits, e.now);
    case "reset":
      return scopeReset(ctx, e.what, e.now);
    case "tick":
      return scopeAdvance(ctx, e.now);
    default:
      // XState's own events (xstate.stop, …) reach transition logic too; they change nothing here.
      return { ctx, notices: [] };
  }
}

/** Apply an actor event (one domain event, or a batch) to a context. Pure; shared by the machine and the immutable transition logic. */
export function scopeFold(context: ScopeContext, event: ScopeEvent | ScopeBatchEvent): Step {
  if (event.type !== "batch") return scopeStep(context, event);
  let ctx = context;
  const notices: ScopeNotice[] = [];
  for (const e of event.events) {
    const s = scopeStep(ctx, e);
    ctx = s.ctx;
    for (const n of s.notices) notices.push(n);
  }
  return { ctx, notices };
}

/**
 * {@link scopeFold} for an actor that owns its context: admissions, settlements, usage and
 * time are written into `context` itself (the returned `ctx` is `context`); a policy, a reset
 * or new latency averages, all rare, give a new context as the pure step does. Same outcome
 * as the fold, event for event (a property test holds the two together).
 */
export function scopeApplyInPlace(context: ScopeContext, event: ScopeEvent | ScopeBatchEvent): Step {
  const notices: ScopeNotice[] = [];
  let ctx = context;
  if (event.type !== "batch") ctx = applyOne(ctx, event, notices);
  else for (const e of event.events) ctx = applyOne(ctx, e, notices);
  return { ctx, notices };
}

function applyOne(ctx: ScopeContext, e: ScopeEvent, notices: ScopeNotice[]): ScopeContext {
  switch (e.type) {
    case "admit":
      scopeAdmitInPlace(ctx, e.demand, e.held, e.now, notices);
      return ctx;
    case "settle":
      scopeSettleInPlace(ctx, e.settlement, e.now, notices);
      return ctx;
    case "use":
      scopeUseInPlace(ctx, e.usage, e.now, notices);
      return ctx;
    case "tick":
      scopeAdvanceInPlace(ctx, e.now, notices);
      return ctx;
    default: {
      const s = scopeStep(ctx, e);
      for (const n of s.notices) notices.push(n);
      return s.ctx;
    }
  }
}

const apply = enqueueActions<ScopeContext, ScopeEvent | ScopeBatchEvent, any, any, any, any, any, any, ScopeNotice>(({ context, event, enqueue }) => {
  const s = scopeFold(context, event);
  for (const n of s.notices) enqueue.emit(n);
  if (s.ctx !== context) enqueue.assign(() => s.ctx);
});

/** The machine's state value for a context: the breaker's state (`closed` without a breaker). */
export function scopeStateValue(ctx: ScopeContext): "closed" | "open" | "halfOpen" {
  return ctx.breaker?.state ?? "closed";
}

const breakerIs =
  (state: "closed" | "open" | "halfOpen") =>
  ({ context }: { context: ScopeContext }) =>
    scopeStateValue(context) === state;

export const scopeMachine = setup({
  types: {
    context: {} as ScopeContext,
    events: {} as ScopeEvent | ScopeBatchEvent,
    input: {} as ScopeInput,
    emitted: {} as ScopeNotice,
  },
  guards: {
    breakerClosed: breakerIs("closed"),
    breakerOpen: breakerIs("open"),
    breakerHalfOpen: breakerIs("halfOpen"),
  },
}).createMachine({
  id: "scope",
  context: ({ input }) => input.restore ?? scopeInit(input.scope, input.limits, input.now),
  initial: "closed",
  on: {
    admit: { actions: apply },
    settle: { actions: apply },
    use: { actions: apply },
    latency: { actions: apply },
    policy: { actions: apply },
    reset: { actions: apply },
    tick: { actions: apply },
    batch: { actions: apply },
  },
  states: {
    closed: {
      always: [
        { guard: "breakerOpen", target: "open" },
        { guard: "breakerHalfOpen", target: "halfOpen" },
      ],
    },
    open: {
      always: [
        { guard: "breakerClosed", target: "closed" },
        { guard: "breakerHalfOpen", target: "halfOpen" },
      ],
    },
    halfOpen: {
      always: [
        { guard: "breakerClosed", target: "closed" },
        { guard: "breakerOpen", target: "open" },
      ],
    },
  },
});

export type ScopeMachine = typeof scopeMachine;
