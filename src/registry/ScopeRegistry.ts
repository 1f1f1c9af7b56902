import { type Actor, type InspectionEvent, createActor } from "xstate";
import { type PolicyDocument, effectivePolicy, parseScope, resolveLimits, type ResolvedLimits } from "../../machines/policy.js";
import { type ScopeContext, type ScopeNotice, scopeAdvance, scopeClone, scopeIsPristine, scopeIsPristineAt } from "../../machines/scope.js";
import { scopeLogic, scopeLogicImmutable } from "../../machines/scopeLogic.js";
import { DormantStore } from "./DormantStore.js";
import { scopeMachine, scopeStep } from "../../machines/scopeMachine.js";
import type { Clock } from "../clock.js";

/**
 * A scope's actor: the transition logic (`machines/scopeLogic.ts`), which writes its own
 * context in place, or, while XState inspection is on, the scope machine for scopes with a
 * breaker (its states are the breaker's, and the Stately inspector draws them) and the
 * immutable transition logic for the rest (inspectors may keep snapshots). All take the
 * same events and reach the same context; the machine costs about four times as much per event.
 */
export type ScopeActor = Actor<typeof scopeMachine> | Actor<typeof scopeLogic>;

/** The XState state value of a scope actor (both logics' snapshots carry it: the breaker's state). */
export function scopeStateOf(actor: ScopeActor): unknown {
  return (actor.getSnapshot() as { value: unknown }).value;
}

/**
 * Default cap on scopes, live and passivated together; past it new scopes are
 * refused `unavailable`. Measured (`npm run bench`, memory series): ~4.8 KB per live
 * actor, ~220 B per passivated scope. With at most {@link DEFAULT_MAX_LIVE_SCOPES} live
 * (580 MB), 2 M scopes (another 410 MB asleep) leave about 290 MB of the default heap
 * ceiling (1280 MB) for leases, idempotency ids and garbage. The service scales both to
 * its own heap (`scopeCapsFor`).
 */
export const DEFAULT_MAX_SCOPES = 2_000_000;

/**
 * Default cap on live scope actors. An admission that would bring one more to life
 * past it is refused `unavailable`; the Passivator keeps the live ones under 80% of
 * it by passivating the oldest that hold nothing, idle or not. Without it, new keys
 * faster than the idle time passivates them filled the heap: 400,000 distinct keys
 * within the default 10 minutes ran a sluice with the default heap out of memory.
 */
export const DEFAULT_MAX_LIVE_SCOPES = 120_000;

export interface ScopeRegistryOptions {
  policy: PolicyDocument;
  clock: Clock;
  /** Called with every state change a scope emits. */
  onNotice?: (scope: string, notice: ScopeNotice) => void;
  /** XState inspection observer given to every scope actor. */
  inspect?: (event: InspectionEvent) => void;
  /** Most scopes, live and passivated together. Default {@link DEFAULT_MAX_SCOPES}. */
  maxScopes?: number;
  /** Most live scope actors an admission may bring to life. Default {@link DEFAULT_MAX_LIVE_SCOPES}. */
  maxLive?: number;
}

/**
 * Holds one root XState actor per scope in use, in a Map. Root actors, not
 * children of one parent: spawning thousands of children under one actor scales
 * badly in XState v5.
 */
export class ScopeRegistry {
  private readonly actors = new Map<string, ScopeActor>();
  /** Contexts of passivated scopes that hold more than defaults; revived on next use. */
  private readonly dormant = new DormantStore();
  /** Resolved limits of each kind's default, shared by every scope of the kind without an override. */
  private readonly defaultLimits = new Map<string, ResolvedLimits>();
  private doc: PolicyDocument;
  /** Most scopes, live and passivated together (see {@link full}). */
  readonly maxScopes: number;
  /** Most live actors an admission may bring to life (see {@link hasLiveRoomFor}). */
  readonly maxLive: number;
  /** Where the walk over the dormant contexts ({@link reclaimDormant}) resumes. */
  private dormantCursor: Iterator<string> | undefined;

  /**
   * When the policy in force took effect: this registry's start (a restart, under the policy
   * file), or the last `setPolicy`. A context kept under older limits is brought under the
   * policy as of then (see {@link underPolicy}).
   */
  private policyAt: number;

  constructor(private readonly opts: ScopeRegistryOptions) {
    this.doc = opts.policy;
    this.policyAt = opts.clock.now();
    this.maxScopes = opts.maxScopes ?? DEFAULT_MAX_SCOPES;
    this.maxLive = opts.maxLive ?? DEFAULT_MAX_LIVE_SCOPES;
  }

  /** The policy document in force. */
  get policy(): PolicyDocument {
    return this.doc;
  }

  /** Number of live scope actors. */
  get size(): number {
    return this.actors.size;
  }

  /**
   * Whether another scope may be created: live actors and dormant contexts both
   * hold memory, so both count against `maxScopes`; past it new scopes are refused
   * `unavailable` rather than growing without bound.
   */
  get full(): boolean {
    return this.actors.size + this.dormant.size >= this.maxScopes;
  }

  /** The limits the policy gives `scope`. */
  limitsFor(scope: string): ResolvedLimits {
    const { kind, value } = parseScope(scope);
    const kp = Object.hasOwn(this.doc.scopes, kind) ? this.doc.scopes[kind] : undefined;
    const overridden = kp?.overrides !== undefined && Object.hasOwn(kp.overrides, value);
    if (overridden) return resolveLimits(effectivePolicy(this.doc, kind, value));
    // Limits are never mutated (a new policy replaces them), so scopes of a kind can share one object.
    let shared = this.defaultLimits.get(kind);
    if (!shared) {
      shared = resolveLimits(effectivePolicy(this.doc, kind, value));
      if (this.defaultLimits.size < 10_000) this.defaultLimits.set(kind, shared);
    }
    return shared;
  }

  /** The actor of `scope`, created on first use (optionally from a persisted context). */
  get(scope: string, restore?: ScopeContext): ScopeActor {
    let actor = this.actors.get(scope);
    if (actor) return actor;
    const now = this.opts.clock.now();
    const limits = this.limitsFor(scope);
    const sleeping = restore ?? this.dormant.get(scope);
    if (sleeping) this.dormant.delete(scope);
    const restored = sleeping ? this.restoreWith(sleeping, limits) : undefined;
    const logic = this.usesMachine(limits) ? scopeMachine : this.opts.inspect ? scopeLogicImmutable : scopeLogic;
    actor = createActor(logic as typeof scopeMachine, {
      id: scope,
      input: { scope, limits, now, restore: restored },
      inspect: this.opts.inspect,
    }) as ScopeActor;
    const onNotice = this.opts.onNotice;
    if (onNotice) (actor as Actor<typeof scopeMachine>).on("*", (n) => onNotice(scope, n as ScopeNotice));
    actor.start();
    this.actors.set(scope, actor);
    // A context from before a policy change gets the limits in force (usage kept), as of when
    // they took effect (see underPolicy).
    if (restored && !sameLimits(restored.limits, limits)) {
      actor.send({ type: "policy", limits, now: this.policyTime(restored) });
    }
    return actor;
  }

  /** The machine only where someone may watch its states: with inspection on, for scopes with a breaker. */
  private usesMachine(limits: ResolvedLimits): boolean {
    return this.opts.inspect !== undefined && limits.breaker !== undefined;
  }

  private restoreWith(ctx: ScopeContext, limits: ResolvedLimits): ScopeContext {
    // The actor will write its context in place: it gets a copy of its own, sharing nothing it writes.
    const own = scopeClone(ctx);
    // The persisted context carries the limits of its time; the policy event brings them up to date.
    own.limits = ctx.limits ?? limits;
    return own;
  }

  /** The actor of `scope` if it is live. */
  peek(scope: string): ScopeActor | undefined {
    return this.actors.get(scope);
  }

  /** The context of `scope` if it is live: the actor's own, updated in place by its next event (copy it to keep it). */
  context(scope: string): ScopeContext | undefined {
    return this.actors.get(scope)?.getSnapshot().context;
  }

  /** Replace the policy; every live actor gets its new limits at once and keeps its usage. */
  setPolicy(doc: PolicyDocument): void {
    this.doc = doc;
    this.defaultLimits.clear();
    const now = this.opts.clock.now();
    this.policyAt = now;
    for (const [scope, actor] of [...this.actors]) {
      const limits = this.limitsFor(scope);
      actor.send({ type: "policy", limits, now });
      // A breaker added or removed changes which logic the scope needs: move its state to a new actor.
      const isMachine = (actor as { logic: unknown }).logic === scopeMachine;
      if (isMachine !== this.usesMachine(limits)) {
        const ctx = actor.getSnapshot().context;
        actor.stop();
        this.actors.delete(scope);
        this.get(scope, ctx);
      }
    }
  }

  /** Live scopes whose name starts with `prefix`, in name order, at most `limit`. */
  list(prefix: string, limit: number): { scopes: { scope: string; state: unknown }[]; truncated: boolean } {
    const names: string[] = [];
    for (const scope of this.actors.keys()) if (scope.startsWith(prefix)) names.push(scope);
    names.sort();
    const scopes = names.slice(0, limit).map((scope) => ({ scope, state: scopeStateOf(this.actors.get(scope)!) }));
    return { scopes, truncated: names.length > limit };
  }

  /** Every live scope and its actor. */
  entries(): IterableIterator<[string, ScopeActor]> {
    return this.actors.entries();
  }

  /**
   * Stop one actor (passivation). With `keep` its context is kept, as plain data,
   * and the actor comes back from it on next use; without, the scope starts afresh.
   */
  remove(scope: string, keep = false): void {
    const actor = this.actors.get(scope);
    if (!actor) return;
    if (keep) this.dormant.set(scope, actor.getSnapshot().context, true);
    actor.stop();
    this.actors.delete(scope);
  }

  /** May `n` more scopes be created under the bound? */
  hasRoomFor(n: number): boolean {
    return this.actors.size + this.dormant.size + n <= this.maxScopes;
  }

  /**
   * May `n` more actors come to life (new or woken) under `maxLive`? Asked by admissions
   * only: reports and expiries settle leases already made, and always wake what they need.
   */
  hasLiveRoomFor(n: number): boolean {
    return this.actors.size + n <= this.maxLive;
  }

  /**
   * Apply what time alone changes by `now` to `scope` (a budget period over, a cooldown
   * ended). A live actor gets a `tick` event; a sleeping scope is advanced where it lies,
   * without an actor, its notices going to `onNotice` as an actor's would, and it is
   * dropped if that leaves it at its defaults. Returns the context after, or undefined
   * when the scope is neither live nor asleep (any more).
   */
  tick(scope: string, now: number): ScopeContext | undefined {
    const actor = this.actors.get(scope);
    if (actor) {
      actor.send({ type: "tick", now });
      return actor.getSnapshot().context;
    }
    const kept = this.dormant.get(scope);
    if (!kept) return undefined;
    // Advanced under the limits it would wake with, not those it fell asleep with.
    const ctx = this.underPolicy(scope, kept);
    const step = scopeAdvance(ctx, now);
    if (step.ctx === ctx) {
      // Kept under the policy now, if it was brought under it (not merely lent the limits it lacked).
      if (ctx !== kept && kept.limits) this.dormant.set(scope, ctx, true);
      return ctx;
    }
    const onNotice = this.opts.onNotice;
    if (onNotice) for (const n of step.notices) onNotice(scope, n);
    if (scopeIsPristine(step.ctx, now)) {
      this.dormant.delete(scope);
      return undefined;
    }
    this.dormant.set(scope, step.ctx, true);
    return step.ctx;
  }

  /**
   * A sleeping scope's context as it would wake: under the limits the policy gives it now
   * (a `policy` event, usage kept) where it was kept with others: a snapshot from
   * before the policy file changed, or a scope asleep through `admin.policy.set`. What time
   * alone does to a sleeping scope (its tick, whether it is back at its defaults) is judged
   * under these: under the old ones, a budget period lengthened since would end early and
   * its usage be dropped. A context kept without limits gets the policy's.
   */
  underPolicy(scope: string, ctx: ScopeContext): ScopeContext {
    const limits = this.limitsFor(scope);
    if (!ctx.limits) return { ...ctx, limits };
    if (sameLimits(ctx.limits, limits)) return ctx;
    // As of when the policy took effect, not of now: the old limits' resets that fell due
    // after that (a 20 s period ending while the scope slept under a new 120 s one) never happened.
    return scopeStep(ctx, { type: "policy", limits, now: this.policyTime(ctx) }).ctx;
  }

  /** When a context kept under older limits came under the policy in force. */
  private policyTime(ctx: ScopeContext): number {
    return Math.max(this.policyAt, ctx.lastActiveAt);
  }

  /** Is `scope` passivated with its context kept (so reviving it adds nothing)? */
  isDormant(scope: string): boolean {
    return this.dormant.has(scope);
  }

  /** The kept context of a passivated scope. */
  dormantContext(scope: string): ScopeContext | undefined {
    return this.dormant.get(scope);
  }

  /**
   * Keep `ctx` as the dormant context of `scope` (a restored snapshot): the actor comes back
   * from it on next use. `pack` it for a long sleep (as passivation does), or keep the object
   * while it is still being updated (replay). A live actor of `scope` is left alone.
   */
  setDormant(scope: string, ctx: ScopeContext, pack = false): void {
    if (this.actors.has(scope)) return;
    this.dormant.set(scope, ctx, pack);
  }

  /** Number of passivated scopes whose context is kept. */
  get dormantCount(): number {
    return this.dormant.size;
  }

  /**
   * Look at up to `max` dormant contexts, resuming where the last call stopped, and drop
   * those that time alone has brought back to defaults: buckets refilled, budget periods
   * over, cooldowns past (`scopeIsPristineAt`). A sleeping scope is otherwise kept
   * forever, so that every key ever seen would count against `maxScopes` and, once they
   * filled it, every new key would be refused. Returns how many were looked at and dropped.
   */
  reclaimDormant(max: number, now: number): { looked: number; reclaimed: number } {
    let looked = 0;
    let reclaimed = 0;
    let restarted = false;
    while (looked < max) {
      this.dormantCursor ??= this.dormant.keys();
      const next = this.dormantCursor.next();
      if (next.done) {
        this.dormantCursor = undefined;
        // Round the end at most once per call: a store smaller than `max` is not walked round and round.
        if (restarted || this.dormant.size === 0) break;
        restarted = true;
        continue;
      }
      looked++;
      const kept = this.dormant.get(next.value);
      const ctx = kept && this.underPolicy(next.value, kept);
      if (ctx && scopeIsPristineAt(ctx, now)) {
        this.dormant.delete(next.value);
        reclaimed++;
      }
    }
    return { looked, reclaimed };
  }

  /** Stop every actor. */
  stopAll(): void {
    for (const actor of this.actors.values()) actor.stop();
    this.actors.clear();
  }
}

/** Are these the same limits: the one object (nearly always), or equal ones (an override's, resolved anew)? */
function sameLimits(a: ResolvedLimits, b: ResolvedLimits): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}
