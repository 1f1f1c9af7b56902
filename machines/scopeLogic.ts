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
 *
 * `scopeLogic` owns its context: admissions, settlements and usage are written into it
 * (`scopeApplyInPlace`), so the context a scope keeps for its lifetime is one object
 * and an event allocates nothing that outlives it. A new context per event would be
 * promoted by the young-generation GC for every scope not touched again within a
 * scavenge or two (most keys), and that promotion was the largest cost left per
 * admission. Whoever reads the context (`getSnapshot().context`) reads the live
 * state: copy it to keep it. `scopeLogicImmutable` makes a new context per change,
 * for observers that hold snapshots (XState inspection).
 */
import { fromTransition } from "xstate";
import type { ScopeContext, ScopeNotice } from "./scope.js";
import { type ScopeBatchEvent, type ScopeEvent, type ScopeInput, scopeApplyInPlace, scopeFold, scopeStateValue } from "./scopeMachine.js";
import { scopeInit } from "./scope.js";

// Its transition is replaced in `logicOf`; only its initial state and the rest of its logic are used.
const transitionLogic = fromTransition<ScopeContext, ScopeEvent | ScopeBatchEvent, any, ScopeInput, ScopeNotice>(
  (context) => context,
  ({ input }) => input.restore ?? scopeInit(input.scope, input.limits, input.now),
);

type Logic = typeof transitionLogic;

/**
 * `fromTransition`'s logic with these changes: the snapshot also carries the state value,
 * and the next snapshot is written out as a literal (the same snapshot when neither the
 * context object nor the state value changed). `fromTransition` builds it as
 * `{ ...snapshot, context }`, a spread with an override, which V8 runs on a slow path
 * about as costly as the rest of an event's delivery.
 */
function logicOf(apply: typeof scopeFold): Logic {
  return {
    ...transitionLogic,
    getInitialSnapshot: (actorScope, input) => {
      const s = transitionLogic.getInitialSnapshot(actorScope, input);
      return { status: s.status, output: s.output, error: s.error, context: s.context, value: scopeStateValue(s.context) } as typeof s;
    },
    transition: (snapshot, event, actorScope) => {
      const s = apply(snapshot.context, event);
      for (const n of s.notices) actorScope.emit(n);
      const context = s.ctx;
      const value = scopeStateValue(context);
      if (context === snapshot.context && value === (snapshot as { value?: unknown }).value) return snapshot;
      return { status: snapshot.status, output: snapshot.output, error: snapshot.error, context, value } as typeof snapshot;
    },
  };
}

/** The runtime's scope logic: the actor writes its own context in place. */
export const scopeLogic: Logic = logicOf(scopeApplyInPlace);

/** The same logic with a new context per change, for observers that keep snapshots. */
export const scopeLogicImmutable: Logic = logicOf(scopeFold);

export type ScopeLogic = typeof scopeLogic;
