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

export const scopeLogic = fromTransition<ScopeContext, ScopeEvent | ScopeBatchEvent, any, ScopeInput, ScopeNotice>(
  (context, event, actorScope) => {
    const s = scopeFold(context, event);
    for (const n of s.notices) actorScope.emit(n);
    return s.ctx;
  },
  ({ input }) => input.restore ?? scopeInit(input.scope, input.limits, input.now),
);

export type ScopeLogic = typeof scopeLogic;
