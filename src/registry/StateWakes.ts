import { type ScopeContext, type ScopeNotice, scopeAwaitedChangeAt } from "../../machines/scope.js";
import { MinHeap } from "../admission/MinHeap.js";
import type { Clock } from "../clock.js";
import type { Logger } from "../log.js";
import type { ScopeRegistry } from "./ScopeRegistry.js";

/** Defaults of {@link StateWakesOptions}. */
export const DEFAULT_STATE_WAKES = {
  /**
   * Most scopes ticked in one timer run; more that fell due together (every exhausted daily
   * budget at midnight) follow in further runs, with admissions served in between. A
   * sleeping scope's tick took 2.5 µs (`.tmp/wakeprobe.mjs` scratch script, 100,000 keys),
   * so a run is a few milliseconds with the events and log lines it makes.
   */
  perRun: 1_000,
  /**
   * Longest a timer is set for, ms: a monthly budget's reset is further off than Node's
   * timers reach (2^31 ms, about 24.8 days); the timer is set again when it fires early.
   */
  maxTimerMs: 3_600_000,
} as const;

export interface StateWakesOptions {
  registry: ScopeRegistry;
  clock: Clock;
  logger?: Logger;
  /**
   * Told of each scope a tick changed (persistence marks it for the next snapshot: else a
   * restart would restore the state from before, and announce its end a second time).
   */
  changed?: (scope: string) => void;
  perRun?: number;
  maxTimerMs?: number;
}

/** The notices that begin a state which time alone ends. */
const BEGINS_AWAITED = new Set<string>(["breaker.opened", "budget.exhausted"]);

/**
 * Ticks each scope when time alone ends a state callers wait on: an open breaker's
 * cooldown, an exhausted budget's period ({@link scopeAwaitedChangeAt}). Its
 * `breaker.half_open` or `budget.reset` is then published at that time, whether or not
 * anyone calls: a worker that paused on `budget.exhausted` can resume on `budget.reset`,
 * and a dashboard shows the breaker half-open when it is. Other time-driven changes (a
 * budget that was not exhausted reaching its period's end) are still announced at the
 * scope's next event, as most scopes with a budget reset every period and nobody waits.
 *
 * A scope is watched when it announces `breaker.opened` or `budget.exhausted` (its new
 * context is read at the end of the turn), and when it is restored with one of those
 * states still ahead. One timer serves all: the earliest due time, in a heap; an entry
 * whose scope was watched again since (a policy change moved its time) is skipped.
 */
export class StateWakes {
  private readonly due = new Map<string, number>();
  private readonly heap = new MinHeap<{ at: number; scope: string }>((a, b) => a.at < b.at);
  private readonly noticed = new Set<string>();
  private noticedQueued = false;
  private timer: unknown;
  private timerAt = Number.POSITIVE_INFINITY;
  private stopped = false;
  private readonly perRun: number;
  private readonly maxTimerMs: number;
  /** Scopes ticked so far. */
  ticked = 0;

  constructor(private readonly opts: StateWakesOptions) {
    this.perRun = opts.perRun ?? DEFAULT_STATE_WAKES.perRun;
    this.maxTimerMs = opts.maxTimerMs ?? DEFAULT_STATE_WAKES.maxTimerMs;
  }

  /** Scopes watched now. */
  get size(): number {
    return this.due.size;
  }

  /** The time `scope` will be ticked at, if it is watched. */
  dueAt(scope: string): number | undefined {
    return this.due.get(scope);
  }

  /** A notice of `scope`: one that begins an awaited state has it watched, once its actor's turn is over. */
  notice(scope: string, n: ScopeNotice): void {
    if (!BEGINS_AWAITED.has(n.type) || this.stopped) return;
    this.noticed.add(scope);
    if (this.noticedQueued) return;
    this.noticedQueued = true;
    queueMicrotask(this.watchNoticed);
  }

  private readonly watchNoticed = (): void => {
    this.noticedQueued = false;
    for (const scope of this.noticed) this.watchScope(scope);
    this.noticed.clear();
  };

  /** Watch `scope`, whose context is `ctx` (live or asleep): tick it when its awaited state ends, if it is in one. */
  watch(scope: string, ctx: ScopeContext): void {
    if (this.stopped) return;
    // Its times are read under the limits it would wake with (a sleeping scope may hold older ones).
    const at = scopeAwaitedChangeAt(this.opts.registry.underPolicy(scope, ctx));
    if (at === null) {
      this.due.delete(scope); // its heap entry is skipped when it comes up
      return;
    }
    if (this.due.get(scope) === at) return;
    this.due.set(scope, at);
    this.heap.push({ at, scope });
    this.arm();
  }

  /** Read every watched scope again (the policy changed: cooldowns and periods with it). */
  rewatch(): void {
    for (const scope of [...this.due.keys()]) if (!this.watchScope(scope)) this.due.delete(scope);
  }

  /** Watch `scope` as the registry holds it now; false when it is neither live nor asleep. */
  private watchScope(scope: string): boolean {
    const { registry } = this.opts;
    const ctx = registry.context(scope) ?? registry.dormantContext(scope);
    if (!ctx) return false;
    this.watch(scope, ctx);
    return true;
  }

  /** Stop the timer and forget every scope. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.due.clear();
    this.noticed.clear();
  }

  private arm(): void {
    const next = this.heap.peek();
    if (!next || this.stopped) return;
    if (this.timer !== undefined && this.timerAt <= next.at) return;
    const { clock } = this.opts;
    if (this.timer !== undefined) clock.clearTimeout(this.timer);
    const delay = Math.min(Math.max(0, next.at - clock.now()), this.maxTimerMs);
    this.timerAt = clock.now() + delay;
    this.timer = clock.setTimeout(this.run, delay);
  }

  private readonly run = (): void => {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const { registry, clock } = this.opts;
    const now = clock.now();
    let n = 0;
    for (let top = this.heap.peek(); top && top.at <= now && n < this.perRun; top = this.heap.peek()) {
      this.heap.pop();
      if (this.due.get(top.scope) !== top.at) continue; // watched again since, or no longer
      this.due.delete(top.scope);
      n++;
      try {
        const ctx = registry.tick(top.scope, now);
        this.opts.changed?.(top.scope);
        if (ctx) this.watch(top.scope, ctx);
      } catch (err) {
        // One scope's failure must not stop the others' ticks (nor the timer).
        this.opts.logger?.error({ err, scope: top.scope }, "ticking a scope at the end of its awaited state failed");
      }
    }
    this.ticked += n;
    this.arm();
  };
}
