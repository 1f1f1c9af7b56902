import type { Usage } from "../../machines/scope.js";
import { ExpiryQueue } from "./ExpiryQueue.js";
import { Fifo } from "./Fifo.js";
import { MinHeap } from "./MinHeap.js";

/** What sluice remembers of an admitted, unreported call. */
export interface LeaseRecord {
  id: string;
  key: string;
  model: string;
  /** Every scope the admission counted against. */
  scopes: string[];
  /** Scopes in which the lease holds a concurrency slot. */
  held: readonly string[];
  /** Scopes whose breaker was half-open at admission (the lease is a probe there). */
  probes: readonly string[];
  estimate: Usage;
  admittedAt: number;
  expiresAt: number;
}

/** What is kept of a lease after it was reported or expired, so repeats count once. */
export interface LeaseTombstone {
  reported: boolean;
  record: LeaseRecord;
  /** Forget the tombstone after this time. */
  until: number;
}

/** No scopes: shared by every lease that holds no slot or is no probe anywhere. */
export const NO_SCOPES: readonly string[] = Object.freeze([]);

/**
 * One lease, live or settled: its record, and (once settled) its tombstone, in one
 * object, so that a lease costs one allocation and settling moves nothing.
 * Build leases with this class; a plain {@link LeaseRecord} given to the table is copied into one.
 */
export class Lease implements LeaseRecord, LeaseTombstone {
  /** Still holding its slots and reservations. */
  live = true;
  reported = false;
  until = Number.POSITIVE_INFINITY;
  constructor(
    readonly id: string,
    readonly key: string,
    readonly model: string,
    readonly scopes: string[],
    readonly held: readonly string[],
    readonly probes: readonly string[],
    readonly estimate: Usage,
    readonly admittedAt: number,
    readonly expiresAt: number,
  ) {}

  static of(r: LeaseRecord): Lease {
    return r instanceof Lease ? r : new Lease(r.id, r.key, r.model, r.scopes, r.held, r.probes, r.estimate, r.admittedAt, r.expiresAt);
  }

  /** As a tombstone: the record is the lease itself. */
  get record(): LeaseRecord {
    return this;
  }
}

type Entry = Lease;

/**
 * Live leases and the tombstones of settled ones, in one Map by id.
 *
 * Expiry order: leases get `now + leaseTtlMs`, so they nearly always arrive in
 * expiry order and wait in a FIFO (O(1) each way); one that would expire before
 * the last queued (the TTL was lowered) goes to a min-heap beside it. Tombstones
 * are dropped in the order buried, likewise. Per scope, the leases holding a slot
 * there wait in a FIFO too, for the earliest expiry a refused caller is told.
 */
export class LeaseTable {
  private readonly entries = new Map<string, Entry>();
  private liveCount = 0;
  private readonly order = new Fifo<Entry>();
  private readonly early = new MinHeap<Entry>((a, b) => a.expiresAt < b.expiresAt);
  private readonly holding = new Map<string, Fifo<Entry>>();
  /** Tombstones in the order buried, each with the time it was buried until. */
  private readonly tombs = new ExpiryQueue<Entry>();
  private tombCount = 0;

  constructor(private readonly maxTombstones = 1_000_000) {}

  /** Live leases. */
  get size(): number {
    return this.liveCount;
  }

  get(id: string): LeaseRecord | undefined {
    const e = this.entries.get(id);
    return e?.live ? e : undefined;
  }

  tombstone(id: string): LeaseTombstone | undefined {
    const e = this.entries.get(id);
    return e && !e.live ? e : undefined;
  }

  add(rec: LeaseRecord): void {
    const e = Lease.of(rec);
    const prior = this.entries.get(e.id);
    if (prior === e) return;
    if (prior?.live) {
      // Never with unique ids; if it were, the old lease must not expire a second time.
      prior.live = false;
      this.liveCount--;
    } else if (prior) this.tombCount--;
    this.entries.set(e.id, e);
    this.liveCount++;
    const last = this.order.last();
    if (last === undefined || last.expiresAt <= e.expiresAt) this.order.push(e);
    else this.early.push(e);
    for (const s of e.held) {
      let q = this.holding.get(s);
      if (!q) this.holding.set(s, (q = new Fifo()));
      q.push(e);
    }
  }

  /** Remove a live lease (reported or expired) and leave a tombstone until `until`. */
  settle(rec: LeaseRecord, reported: boolean, until: number): void {
    const e = this.entries.get(rec.id);
    if (!e || !e.live || e !== rec) return;
    e.live = false;
    this.liveCount--;
    for (const s of rec.held) {
      const q = this.holding.get(s);
      if (!q) continue;
      while (q.size > 0 && !q.peek()!.live) q.shift();
      if (q.size === 0) this.holding.delete(s);
    }
    this.entomb(e, reported, until);
  }

  /** Remember a settled id (also for reports of unknown leases, so their repeats count once). */
  bury(id: string, tomb: LeaseTombstone): void {
    const prior = this.entries.get(id);
    if (prior?.live) return;
    let e: Lease;
    if (prior !== undefined && prior === tomb.record) {
      // Buried again (a late report): the same lease, a later time.
      e = prior;
      this.tombCount--;
    } else {
      if (prior) this.tombCount--;
      const r = tomb.record;
      e = new Lease(id, r.key, r.model, r.scopes, r.held, r.probes, r.estimate, r.admittedAt, r.expiresAt);
      e.live = false;
      this.entries.set(id, e);
    }
    this.entomb(e, tomb.reported, tomb.until);
  }

  private entomb(e: Entry, reported: boolean, until: number): void {
    e.reported = reported;
    e.until = until;
    this.tombs.push(e, until);
    this.tombCount++;
    while (this.tombCount > this.maxTombstones) {
      const oldest = this.tombs.shift();
      if (oldest === undefined) break;
      this.dropTomb(oldest, Number.POSITIVE_INFINITY);
    }
  }

  /** Live leases whose expiry is at or before `now`, removed from the expiry order (still live until settled). */
  *due(now: number): Generator<LeaseRecord> {
    for (;;) {
      const a = this.order.peek();
      const b = this.early.peek();
      let e: Entry;
      if (a !== undefined && a.expiresAt <= now && (b === undefined || a.expiresAt <= b.expiresAt)) {
        e = this.order.shift()!;
      } else if (b !== undefined && b.expiresAt <= now) {
        e = this.early.pop()!;
      } else return;
      // A lease reported earlier is a tombstone now; its place in the order is stale.
      if (e.live) yield e;
    }
  }

  /** Is a lease due to expire, or a tombstone to be dropped, at `now`? (Cheap: looks at the fronts only.) */
  anyDue(now: number): boolean {
    const next = this.nextExpiry();
    if (next !== undefined && next <= now) return true;
    const t = this.tombs.nextTime();
    return t !== undefined && t <= now;
  }

  /** Drop tombstones past their time. */
  pruneTombstones(now: number): void {
    for (const e of this.tombs.popDue(now)) this.dropTomb(e, now);
  }

  /** Forget a tombstone, unless it is live again or was buried for longer since. */
  private dropTomb(e: Entry, now: number): void {
    if (e.live || e.until > now) return;
    if (this.entries.get(e.id) === e) {
      this.entries.delete(e.id);
      this.tombCount--;
    }
  }

  /** The expiry of the oldest live lease holding a slot in `scope` (the earliest, leases sharing one TTL). */
  earliestHeldExpiry(scope: string): number | undefined {
    const q = this.holding.get(scope);
    if (!q) return undefined;
    let min: number | undefined;
    let looked = 0;
    for (const e of q) {
      if (e.live && (min === undefined || e.expiresAt < min)) min = e.expiresAt;
      // In TTL order the first live one is the earliest; look a little further for a lowered TTL.
      if (++looked > 16) break;
    }
    return min;
  }

  /** The earliest expiry of any live lease (may be a stale entry: an upper bound on the wait). */
  nextExpiry(): number | undefined {
    const a = this.order.peek()?.expiresAt;
    const b = this.early.peek()?.expiresAt;
    if (a === undefined) return b;
    return b === undefined ? a : Math.min(a, b);
  }

  /** Every live lease. */
  *values(): IterableIterator<LeaseRecord> {
    for (const e of this.entries.values()) if (e.live) yield e;
  }
}
