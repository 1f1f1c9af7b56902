/**
 * Durable state of a sluice service: the usage journal (written before usage is
 * applied), periodic snapshots of the scopes that changed, and the restore at start.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Admissions } from "../admission/Admissions.js";
import type { Clock } from "../clock.js";
import { type Logger, silentLogger } from "../log.js";
import type { ScopeRegistry } from "../registry/ScopeRegistry.js";
import { scopeClone } from "../../machines/scope.js";
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
}

export const DEFAULT_SNAPSHOT_MS = 5_000;

export interface RestoreStats {
  snapshots: number;
  replayed: number;
  fromSeq: number;
  toSeq: number;
  ms: number;
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
   * them up to the last one at this moment. Run before anything is served.
   */
  async restore(registry: ScopeRegistry, admissions: Admissions): Promise<RestoreStats> {
    const t0 = performance.now();
    const restorer = new Restorer(registry);
    const snapshots = restorer.load(await this.snapshots.loadAll(), await this.snapshots.loadRoundSeq());
    const { last } = await this.journal.bounds();
    const fromSeq = restorer.replayFrom;
    const replayed = await this.journal.replay(fromSeq, last, (seq, e) => {
      restorer.apply(seq, e);
      admissions.restoreTombstone(e);
    });
    admissions.restoredUpTo(last);
    for (const s of restorer.touched) this.dirty.add(s);
    const stats = { snapshots, replayed, fromSeq, toSeq: last, ms: Math.round(performance.now() - t0) };
    this.logger.info(
      { ...stats, perSecond: stats.ms > 0 ? Math.round((replayed * 1000) / stats.ms) : undefined },
      `restored ${snapshots} scope snapshots and replayed ${replayed} journal entries in ${stats.ms} ms`,
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
   * Take the contexts of every changed scope in one synchronous turn, with the journal
   * sequence they include, then write them. Skipped (resolves at once) while the
   * previous round is still writing.
   */
  snapshot(): Promise<void> {
    if (this.writing) {
      this.counts.skipped++;
      return this.writing;
    }
    const seq = this.admissions?.appliedSeq ?? 0;
    const items = this.take();
    if (items.length === 0 && seq <= this.roundSeq) return Promise.resolve();
    const w = this.snapshots
      .writeAll(items)
      .then(async () => {
        // Every changed scope is written (those of a failed round were taken again in this one):
        // replay may start after `seq` for all of them.
        if (seq > this.roundSeq) {
          await this.snapshots.writeRoundSeq(seq);
          this.roundSeq = seq;
        }
      })
      .then(
        () => {
          this.counts.rounds++;
          this.counts.scopes += items.length;
        },
        (err: unknown) => {
          // Written again next round (unless changed since, which marks them anyway).
          this.counts.failures++;
          for (const s of items) this.dirty.add(s.scope);
          this.logger.warn({ err, scopes: items.length }, "snapshot not written; retried next round");
        },
      )
      .finally(() => {
        this.writing = undefined;
      });
    this.writing = w;
    return w;
  }

  private take(): ScopeSnapshot[] {
    const registry = this.registry;
    const admissions = this.admissions;
    if (!registry || !admissions || this.dirty.size === 0) return [];
    const seq = admissions.appliedSeq;
    const items: ScopeSnapshot[] = [];
    for (const scope of this.dirty) {
      const ctx = registry.context(scope) ?? registry.dormantContext(scope) ?? null;
      // A live actor writes its context in place, and the writes below span later turns: copy
      // it now, so each snapshot holds exactly what `seq` includes.
      items.push({ seq, scope, ctx: ctx && scopeClone(ctx) });
    }
    this.dirty.clear();
    return items;
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
