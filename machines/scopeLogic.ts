/**
 * The scope actor's logic as an XState transition actor, folding the very same
 * pure step as `scopeMachine`; the runtime's default for every scope.
 *
 * Why two logics: a state machine pays for state-node resolution on every event.
 * Measured on this project's 2-core machine with 2,000 actors touched in scattered
 * order: ~10 µs and ~10 KB of garbage per event for the machine, ~2.5 µs for this.
 * Every admission sends an event to its model's scope, so the machine was the largest
 * single cost of an admission. Both are XState actors: one mailbox each, one event at
 * a time, inspectable; both take the same events and produce the same context for them
 * (a property test checks it). This one's snapshot carries the machine's state value
 * too (`value`: the breaker's `closed`, `open` or `halfOpen`), so inspection shows the
 * same thing. The runtime uses the machine, whose states the Stately inspector can draw,
 * when inspection is on (see ScopeRegistry).
 */
import { fromTransition } from "xstate";
import type { ScopeContext, ScopeNotice } from "./scope.js";
import { type ScopeBatchEvent, type ScopeEvent, type ScopeInput, scopeFold, scopeStateValue } from "./scopeMachine.js";
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
 * `fromTransition`'s logic with two changes: the snapshot also carries the state value,
 * and the next snapshot is written out as a literal (the same snapshot when the context did
 * not change). `fromTransition` builds it as `{ ...snapshot, context }`, a spread with an
 * override, which V8 runs on a slow path about as costly as the rest of an event's delivery.
 */
export const scopeLogic: typeof transitionLogic = {
  ...transitionLogic,
  getInitialSnapshot: (actorScope, input) => {
    const s = transitionLogic.getInitialSnapshot(actorScope, input);
    return { status: s.status, output: s.output, error: s.error, context: s.context, value: scopeStateValue(s.context) } as typeof s;
  },
  transition: (snapshot, event, actorScope) => {
    const context = step(snapshot.context, event, actorScope);
    if (context === snapshot.context) return snapshot;
    return { status: snapshot.status, output: snapshot.output, error: snapshot.error, context, value: scopeStateValue(context) } as typeof snapshot;
  },
};

export type ScopeLogic = typeof scopeLogic;
