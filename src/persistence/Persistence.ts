/**
 * Durable state of a sluice service: the usage journal (written before usage is
 * applied), periodic snapshots of the scopes that changed, and the restore at start.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Admissions } from "../admission/Admissions.js";
import type { Clock } from "../clock.js";
import { type Logger, silentLogger } from "../log.js";
import type { ScopeRegistry } from "../registry/ScopeRegistry.js";
import { type ScopeContext, scopeClone } from "../../machines/scope.js";
import { Journal } from "./Journal.js";
import { Restorer } from "./restore.js";
import { type ScopeSnapshot, SnapshotStore } from "./SnapshotStore.js";
import { stateNames } from "./stateNames.js";

/** Settings of persistence (all optional). */
export interface PersistenceOptions {
  /** Journal stream name. Default from the prefix (`SLUICE_JOURNAL` for `sluice`; see stateNames). */
  journalStream?: string;
  /** Snapshot KV bucket. Default from the prefix (`SLUICE_STATE` for `sluice`; see stateNames). */
  stateBucket?: string;
  /** Snapshot interval, ms. Default 5000. */
  snapshotMs?: number;
  /** Journal retention, ms. Default 7 days. */
  maxAgeMs?: number;
  /** Journal duplicate window, ms. Default 2 minutes. */
  duplicateWindowMs?: number;
  /** PubAck timeout, ms. Default 5000. */
  timeoutMs?: number;
  /** Most journal appends in flight. Default 10 000. */
  maxPendingAppends?: number;
  /** Scopes a snapshot round copies in one turn of the event loop. Default {@link DEFAULT_TAKE_PER_TURN}. */
  takePerTurn?: number;
}

export const DEFAULT_SNAPSHOT_MS = 5_000;

/**
 * Scopes a snapshot round copies per turn; it writes them before it copies the next ones.
 * A round that copied every changed scope in one turn held admissions up for as long: 124 ms
 * for 100,000 scopes changed since the last round (a flood of new keys; `.tmp/takeprobe.mjs`
 * scratch script), about 2.5 ms per 2,000.
 */
export const DEFAULT_TAKE_PER_TURN = 2_000;

export interface RestoreStats {
  /** Scope snapshots read from the state bucket, readable or not. */
  snapshots: number;
  /** Of the snapshots, those left out: back at their defaults by the time of the restart. */
  atDefaults: number;
  /**
   * Values of the state bucket left out because they are not snapshots sluice writes (not
   * JSON, or a context that is not one); their scopes start again from the journal.
   */
  unreadable: number;
  replayed: number;
  fromSeq: number;
  toSeq: number;
  ms: number;
}

/**
 * Snapshots of `scopes[from..to)` as they are now, with the journal sequence applied now. A
 * live actor writes its context in place, and the writes span later turns: each is copied.
 */
function take(registry: ScopeRegistry, admissions: Admissions, scopes: readonly string[], from: number, to: number): ScopeSnapshot[] {
  const seq = admissions.appliedSeq;
  const items: ScopeSnapshot[] = [];
  for (let i = from; i < to && i < scopes.length; i++) {
    const scope = scopes[i]!;
    const ctx = registry.context(scope) ?? registry.dormantContext(scope) ?? null;
    items.push({ seq, scope, ctx: ctx && scopeClone(ctx) });
  }
  return items;
}

export class Persistence {
  /** Scopes changed since the last snapshot was taken. */
  readonly dirty = new Set<string>();
  private timer: unknown = undefined;
  private writing: Promise<void> | undefined;
  private registry?: ScopeRegistry;
  private admissions?: Admissions;
  private clock?: Clock;
  private stopped = false;
  /** Sequence of the last complete round written. */
  private roundSeq = 0;
  /** Snapshot rounds written, and skipped because the previous one was still writing. */
  readonly counts = { rounds: 0, skipped: 0, scopes: 0, failures: 0 };

  private constructor(
    readonly journal: Journal,
    readonly snapshots: SnapshotStore,
    private readonly opts: PersistenceOptions,
    private readonly logger: Logger,
  ) {}

  /** Open (creating when missing) the journal stream and the snapshot bucket. */
  static async open(nc: NatsConnection, prefix: string, opts: PersistenceOptions = {}, logger: Logger = silentLogger): Promise<Persistence> {
    const journal = await Journal.open({
      nc, prefix, logger,
      stream: opts.journalStream ?? stateNames(prefix).journalStream,
      maxAgeMs: opts.maxAgeMs,
      duplicateWindowMs: opts.duplicateWindowMs,
      timeoutMs: opts.timeoutMs,
    });
    const snapshots = await SnapshotStore.open(nc, opts.stateBucket ?? stateNames(prefix).stateBucket);
    return new Persistence(journal, snapshots, opts, logger);
  }

  get maxPendingAppends(): number | undefined {
    return this.opts.maxPendingAppends;
  }

  /** Record that `scope` changed. */
  markDirty = (scope: string): void => {
    this.dirty.add(scope);
  };

  /**
   * Snapshots into the registry as dormant contexts, then the journal entries after
   * them up to the last one at this moment. Run before anything is served. With `now`
   * (the clock's), snapshots that hold nothing but defaults by then are left out.
   */
  async restore(registry: ScopeRegistry, admissions: Admissions, now?: number, watch?: (scope: string, ctx: ScopeContext) => void): Promise<RestoreStats> {
    const t0 = performance.now();
    const restorer = new Restorer(registry, now, watch);
    restorer.setRoundSeq(await this.snapshots.loadRoundSeq());
    restorer.setStoredLimits(await this.snapshots.loadLimits());
    // One at a time, as they arrive: a million snapshots are never all in memory at once.
    let notSnapshots = 0;
    const snapshots =
      (await this.snapshots.forEach(
        (snap) => restorer.add(snap),
        (what) => {
          notSnapshots++;
          restorer.unreadable(what);
        },
      )) + notSnapshots;
    const { last } = await this.journal.bounds();
    const fromSeq = restorer.replayFrom;
    const replayed = await this.journal.replay(fromSeq, last, (seq, e) => {
      restorer.apply(seq, e);
      admissions.restoreTombstone(e);
    });
    admissions.restoredUpTo(last);
    restorer.finish();
    for (const s of restorer.touched) this.dirty.add(s);
    const unreadable = restorer.unreadableCount;
    if (unreadable > 0) {
      this.logger.warn(
        { unreadable, first: restorer.unreadableExamples, bucket: this.snapshots.bucket },
        `${unreadable} snapshots in the state bucket are not ones sluice writes and were left out: their scopes start again from the journal entries after the last snapshot round`,
      );
    }
    if (registry.full) {
      // Every snapshot that still holds usage is kept (counts are not dropped to make room), so
      // new scopes wait for sleeping ones to be reclaimed as their usage resets.
      this.logger.warn(
        { scopes: registry.size + registry.dormantCount, maxScopes: registry.maxScopes },
        "the restored scopes fill SLUICE_MAX_SCOPES: admissions naming a new scope are refused unavailable until sleeping ones are back at their defaults and dropped (raise SLUICE_MAX_HEAP_MB or SLUICE_MAX_SCOPES)",
      );
    }
    const stats = { snapshots, atDefaults: restorer.skipped, unreadable, replayed, fromSeq, toSeq: last, ms: Math.round(performance.now() - t0) };
    this.logger.info(
      { ...stats, perSecond: stats.ms > 0 ? Math.round((replayed * 1000) / stats.ms) : undefined },
      `read ${snapshots} scope snapshots (left out: ${restorer.skipped} back at their defaults, ${unreadable} unreadable) and replayed ${replayed} journal entries in ${stats.ms} ms`,
    );
    return stats;
  }

  /** Take a snapshot every `snapshotMs`. */
  start(registry: ScopeRegistry, admissions: Admissions, clock: Clock): void {
    this.registry = registry;
    this.admissions = admissions;
    this.clock = clock;
    const every = this.opts.snapshotMs ?? DEFAULT_SNAPSHOT_MS;
    const tick = () => {
      void this.snapshot();
      if (!this.stopped) this.timer = clock.setTimeout(tick, every);
    };
    this.timer = clock.setTimeout(tick, every);
  }

  /**
   * Write a snapshot of every changed scope: `takePerTurn` at a time, each copied in one
   * synchronous step with the journal sequence it includes then (so a snapshot holds exactly
   * what its sequence says), and written before the next are copied. Once all are written,
   * the round's sequence (that at its start: every scope changed up to it has a snapshot
   * including it) is recorded. Skipped (resolves at once) while the previous round is still
   * writing; scopes changed during a round are written by the next.
   */
  snapshot(): Promise<void> {
    if (this.writing) {
      this.counts.skipped++;
      return this.writing;
    }
    const registry = this.registry;
    const admissions = this.admissions;
    const seq = admissions?.appliedSeq ?? 0;
    if (!registry || !admissions || (this.dirty.size === 0 && seq <= this.roundSeq)) return Promise.resolve();
    const scopes = [...this.dirty];
    this.dirty.clear();
    const w = this.writeRound(registry, admissions, scopes, seq)
      .then(
        () => {
          this.counts.rounds++;
          this.counts.scopes += scopes.length;
        },
        (err: unknown) => {
          // Written again next round (unless changed since, which marks them anyway).
          this.counts.failures++;
          for (const s of scopes) this.dirty.add(s);
          this.logger.warn({ err, scopes: scopes.length }, "snapshot not written; retried next round");
        },
      )
      .finally(() => {
        this.writing = undefined;
      });
    this.writing = w;
    return w;
  }

  private async writeRound(registry: ScopeRegistry, admissions: Admissions, scopes: readonly string[], seq: number): Promise<void> {
    const per = Math.max(1, this.opts.takePerTurn ?? DEFAULT_TAKE_PER_TURN);
    // The first slice is taken before this returns its promise, the others after the writes before them.
    for (let i = 0; i < scopes.length; i += per) await this.snapshots.writeAll(take(registry, admissions, scopes, i, i + per));
    if (seq > this.roundSeq) {
      await this.snapshots.writeRoundSeq(seq);
      this.roundSeq = seq;
    }
  }

  /** Stop the timer, wait for a round in flight, then take and write a final snapshot. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.clock?.clearTimeout(this.timer);
    this.timer = undefined;
    if (this.writing) await this.writing;
    await this.snapshot();
  }
}
