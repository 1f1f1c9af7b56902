/**
 * The scope actor's logic for scopes without a breaker (most keys, teams, jobs):
 * an XState transition actor folding the very same pure step as `scopeMachine`.
 *
 * Why two logics: a state machine pays for state-node resolution on every event;
 * with thousands of scopes touched in scattered order that is ~9 µs an event
 * here, against ~3 µs for a transition actor. The breaker's states are what the
 * machine's states are for, so scopes whose policy has a breaker keep the
 * machine, and the many others use this. Both are XState actors: one mailbox
 * each, one event at a time, inspectable; both take the same events and produce
 * the same context for them. For these scopes the state value is always
 * `closed`, as the machine's would be.
 */
import { fromTransition } from "xstate";
import type { ScopeContext, ScopeNotice } from "./scope.js";
import { type ScopeBatchEvent, type ScopeEvent, type ScopeInput, scopeFold } from "./scopeMachine.js";
import { scopeInit } from "./scope.js";

function step(context: ScopeContext, event: ScopeEvent | ScopeBatchEvent, actorScope: { emit: (n: ScopeNotice) => void }): ScopeContext {
  const s = scopeFold(context, event);
  for (const n of s.notices) actorScope.emit(n);
  return s.ctx;
}

const transitionLogic = fromTransition<ScopeContext, ScopeEvent | ScopeBatchEvent, any, ScopeInput, ScopeNotice>(step, ({ input }) =>
  input.restore ?? scopeInit(input.scope, input.limits, input.now),
);

/**
 * `fromTransition`'s logic with one change: the next snapshot is written out as a literal
 * (and is the same snapshot when the context did not change). `fromTransition` builds it as
 * `{ ...snapshot, context }`, which V8 runs on a slow path, about as costly as the rest of an
 * event's delivery. Same snapshot shape, same behaviour.
 */
export const scopeLogic: typeof transitionLogic = {
  ...transitionLogic,
  transition: (snapshot, event, actorScope) => {
    const context = step(snapshot.context, event, actorScope);
    if (context === snapshot.context) return snapshot;
    return { status: snapshot.status, output: snapshot.output, error: snapshot.error, context } as typeof snapshot;
  },
};

export type ScopeLogic = typeof scopeLogic;
