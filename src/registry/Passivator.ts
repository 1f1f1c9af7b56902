import { scopeIsPristineAt } from "../../machines/scope.js";
import type { Clock } from "../clock.js";
import type { Logger } from "../log.js";
import type { ScopeRegistry } from "./ScopeRegistry.js";

/** Defaults of {@link PassivatorOptions}. */
export const DEFAULT_PASSIVATION = {
  /** A scope with no traffic for this long is passivated, ms. */
  idleMs: 10 * 60_000,
  /** How often a sweep slice runs, ms. */
  sweepEveryMs: 100,
  /**
   * Most actors looked at per slice (the walk resumes where it stopped). Looking is
   * cheap (about 1 ms for 20,000 live actors, none idle, in a probe); passivating is
   * not, and has a bound of its own (`maxPassivatedPerSweep`).
   */
  perSweep: 20_000,
  /**
   * Most actors passivated per slice: 3–6 µs each (a context packed, the actor stopped;
   * `.tmp/passprobe.mjs`: 2,000 in 12–27 ms on a slow day, GC included), so a slice stays
   * in the low milliseconds however many went idle at once.
   */
  maxPassivatedPerSweep: 2_000,
  /**
   * A slice that stopped at one of its bounds is followed after this fraction of
   * `sweepEveryMs` rather than the whole: passivation falls behind a flood of new keys
   * only while that flood outruns several thousand passivations per 10 ms.
   */
  hurryFraction: 0.1,
  /** Fewest actors looked at per slice. */
  minPerSweep: 64,
  /**
   * Dormant contexts looked at per slice, to drop those that time has brought back to
   * defaults (`ScopeRegistry.reclaimDormant`): about 2.2 µs each (`.tmp/reclaimprobe.mjs`
   * scratch script, 100,000 dormant keys of the memory series' policy), so 200 per 100 ms
   * is under 0.5% of a core and a pass over 2,000,000 takes about 17 minutes. While the
   * registry is full (new scopes refused), `dormantPerSweepFull` per slice.
   */
  dormantPerSweep: 200,
  dormantPerSweepFull: 2_000,
  /**
   * Share of the registry's `maxLive` that live actors are kept under: past it, actors
   * holding nothing are passivated before their idle time, oldest first.
   */
  liveTarget: 0.8,
} as const;

export interface PassivatorOptions {
  registry: ScopeRegistry;
  clock: Clock;
  logger?: Logger;
  idleMs?: number;
  sweepEveryMs?: number;
  perSweep?: number;
  maxPassivatedPerSweep?: number;
  /** Something outside the actor still needs it live (callers waiting on it). */
  busy?: (scope: string) => boolean;
}

/**
 * Stops scope actors that have seen no traffic for `idleMs`, so that memory
 * follows the number of active scopes rather than the number ever seen. A scope
 * that holds nothing but defaults (full buckets, no usage, closed breaker) is
 * dropped; any other keeps its context as plain data and comes back from it on
 * next use. A scope with leases in flight or callers waiting is never passivated.
 * Sweeps walk the actors incrementally, a slice per tick, sized so that a whole
 * pass takes about half the idle time (at most `perSweep` per slice): a scope is
 * passivated between `idleMs` and about 1.5 × `idleMs` after its last event. A slice
 * that reached a bound (`perSweep` looked at, `maxPassivatedPerSweep` passivated) is
 * followed sooner, so that a flood of new keys cannot outrun the walk: at a fixed
 * walking rate, keys arriving at more than half of it were seen to pile up live
 * (200,000 live actors, 4.4 KB each, at 9,600 new keys a second against 20,000 looked
 * at a second; the heap ran out).
 *
 * Idle time alone does not bound memory: new keys within one idle time stay live. Past
 * 80% of the registry's `maxLive`, the walk passivates every actor that holds nothing
 * (no lease in flight, no caller waiting), idle or not, until the live ones are back
 * under that; such an actor comes back from its context on next use, as any other.
 */
export class Passivator {
  private timer: unknown = undefined;
  private cursor: Iterator<[string, unknown]> | undefined;
  /** Actors the current pass has still to look at: those live when it began. */
  private passLeft = 0;
  private readonly idleMs: number;
  private readonly sweepEveryMs: number;
  private readonly perSweep: number;
  private readonly maxPassivated: number;
  /** Whether the last slice stopped at a bound with more to do, or left the live actors over the target. */
  private behind = false;
  /** When the last slice ran (its `now`). */
  private lastSweepAt: number | undefined;
  /**
   * Scopes passivated so far: dropped (pristine) and kept (with state); `early` of them before
   * their idle time, over the live target. `reclaimed`: dormant ones dropped since, time having
   * brought them back to defaults.
   */
  readonly counts = { dropped: 0, kept: 0, early: 0, reclaimed: 0 };

  constructor(private readonly opts: PassivatorOptions) {
    this.idleMs = opts.idleMs ?? DEFAULT_PASSIVATION.idleMs;
    this.sweepEveryMs = opts.sweepEveryMs ?? DEFAULT_PASSIVATION.sweepEveryMs;
    this.perSweep = opts.perSweep ?? DEFAULT_PASSIVATION.perSweep;
    this.maxPassivated = opts.maxPassivatedPerSweep ?? DEFAULT_PASSIVATION.maxPassivatedPerSweep;
  }

  start(): void {
    if (this.timer !== undefined) return;
    const tick = () => {
      this.sweep();
      this.timer = this.opts.clock.setTimeout(tick, this.behind ? this.sweepEveryMs * DEFAULT_PASSIVATION.hurryFraction : this.sweepEveryMs);
    };
    this.timer = this.opts.clock.setTimeout(tick, this.sweepEveryMs);
  }

  stop(): void {
    if (this.timer !== undefined) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Look at the next slice of actors and passivate the idle ones. Returns how many were passivated. */
  sweep(now = this.opts.clock.now()): number {
    const { registry } = this.opts;
    let looked = 0;
    let passivated = 0;
    // Only as many as a whole pass per half idle time needs: every request arriving during
    // a slice waits for it, and walking thousands of actors for nothing is wasted time.
    // A slice that comes late (a busy event loop delays timers) walks as far as the time since the last one asks.
    const since = this.lastSweepAt === undefined ? this.sweepEveryMs : Math.max(this.sweepEveryMs, now - this.lastSweepAt);
    this.lastSweepAt = now;
    // Over the live target, actors that hold nothing are passivated idle or not (oldest first, as the walk goes)
    // until the live ones are back under it: memory follows the cap, not the rate of new keys.
    const target = Math.floor(registry.maxLive * DEFAULT_PASSIVATION.liveTarget);
    const pressed = registry.size > target;
    const slice = pressed
      ? this.perSweep
      : Math.min(this.perSweep, Math.max(DEFAULT_PASSIVATION.minPerSweep, Math.ceil((registry.size * since * 2) / this.idleMs)));
    // Map iterators are live: removing entries during the walk is safe, and the walk resumes next tick.
    // A pass ends after the actors that were live when it began. Scopes created since are
    // appended to the Map; a pass that went on to them could chase a stream of new scopes
    // for as long as it lasts, while the ones behind it went idle and stayed live (seen
    // with new keys at more than half the walking rate: live actors grew until the stream stopped).
    if (this.cursor === undefined) {
      this.cursor = registry.entries();
      this.passLeft = registry.size;
    }
    while (looked < slice && passivated < this.maxPassivated) {
      const next = this.passLeft > 0 ? this.cursor.next() : { done: true as const, value: undefined };
      if (next.done) {
        this.cursor = undefined;
        break;
      }
      this.passLeft--;
      looked++;
      const [scope, actor] = next.value as [string, { getSnapshot(): { context: import("../../machines/scope.js").ScopeContext } }];
      const ctx = actor.getSnapshot().context;
      const idle = now - ctx.lastActiveAt >= this.idleMs;
      if ((!idle && !(pressed && registry.size > target)) || ctx.held > 0 || this.opts.busy?.(scope)) continue;
      // Judged as of now, with the resets due by now applied: a key idle past the end of its
      // budget's day is dropped here rather than kept asleep until the dormant walk reaches it.
      const keep = !scopeIsPristineAt(ctx, now);
      registry.remove(scope, keep);
      if (keep) this.counts.kept++;
      else this.counts.dropped++;
      if (!idle) this.counts.early++;
      passivated++;
    }
    // Stopped at a bound with more to walk, or still over the target: come back soon, as long as
    // this slice got somewhere (when every live actor holds a lease, walking them every 10 ms
    // would only burn the thread).
    this.behind =
      passivated >= this.maxPassivated || (looked >= this.perSweep && this.cursor !== undefined) || (registry.size > target && passivated > 0);
    if (passivated > 0) this.opts.logger?.debug({ passivated, live: registry.size, dormant: registry.dormantCount }, "passivated idle scopes");
    const { reclaimed } = registry.reclaimDormant(registry.full ? DEFAULT_PASSIVATION.dormantPerSweepFull : DEFAULT_PASSIVATION.dormantPerSweep, now);
    this.counts.reclaimed += reclaimed;
    if (reclaimed > 0) this.opts.logger?.debug({ reclaimed, dormant: registry.dormantCount }, "dropped sleeping scopes back at their defaults");
    return passivated;
  }
}
