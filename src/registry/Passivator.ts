import { scopeIsPristine } from "../../machines/scope.js";
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
   * Most actors looked at per slice (the walk resumes where it stopped): up to
   * 20,000 a second in slices of well under a millisecond when nothing is idle
   * (0.17 ms for 2,000 in a probe; more when many are passivated), so passivation
   * keeps up with a flood of new keys without stalling the event loop.
   */
  perSweep: 2_000,
  /** Fewest actors looked at per slice. */
  minPerSweep: 64,
} as const;

export interface PassivatorOptions {
  registry: ScopeRegistry;
  clock: Clock;
  logger?: Logger;
  idleMs?: number;
  sweepEveryMs?: number;
  perSweep?: number;
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
 * passivated between `idleMs` and about 1.5 × `idleMs` after its last event.
 */
export class Passivator {
  private timer: unknown = undefined;
  private cursor: Iterator<[string, unknown]> | undefined;
  /** Actors the current pass has still to look at: those live when it began. */
  private passLeft = 0;
  private readonly idleMs: number;
  private readonly sweepEveryMs: number;
  private readonly perSweep: number;
  /** Scopes passivated so far: dropped (pristine) and kept (with state). */
  readonly counts = { dropped: 0, kept: 0 };

  constructor(private readonly opts: PassivatorOptions) {
    this.idleMs = opts.idleMs ?? DEFAULT_PASSIVATION.idleMs;
    this.sweepEveryMs = opts.sweepEveryMs ?? DEFAULT_PASSIVATION.sweepEveryMs;
    this.perSweep = opts.perSweep ?? DEFAULT_PASSIVATION.perSweep;
  }

  start(): void {
    if (this.timer !== undefined) return;
    const tick = () => {
      this.sweep();
      this.timer = this.opts.clock.setTimeout(tick, this.sweepEveryMs);
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
    const slice = Math.min(this.perSweep, Math.max(DEFAULT_PASSIVATION.minPerSweep, Math.ceil((registry.size * this.sweepEveryMs * 2) / this.idleMs)));
    // Map iterators are live: removing entries during the walk is safe, and the walk resumes next tick.
    // A pass ends after the actors that were live when it began. Scopes created since are
    // appended to the Map; a pass that went on to them could chase a stream of new scopes
    // for as long as it lasts, while the ones behind it went idle and stayed live (seen
    // with new keys at more than half the walking rate: live actors grew until the stream stopped).
    if (this.cursor === undefined) {
      this.cursor = registry.entries();
      this.passLeft = registry.size;
    }
    while (looked < slice) {
      const next = this.passLeft > 0 ? this.cursor.next() : { done: true as const, value: undefined };
      if (next.done) {
        this.cursor = undefined;
        break;
      }
      this.passLeft--;
      looked++;
      const [scope, actor] = next.value as [string, { getSnapshot(): { context: import("../../machines/scope.js").ScopeContext } }];
      const ctx = actor.getSnapshot().context;
      if (now - ctx.lastActiveAt < this.idleMs || ctx.held > 0 || this.opts.busy?.(scope)) continue;
      const keep = !scopeIsPristine(ctx, now);
      registry.remove(scope, keep);
      if (keep) this.counts.kept++;
      else this.counts.dropped++;
      passivated++;
    }
    if (passivated > 0) this.opts.logger?.debug({ passivated, live: registry.size, dormant: registry.dormantCount }, "passivated idle scopes");
    return passivated;
  }
}
