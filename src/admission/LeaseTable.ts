import { ExpiryQueue } from "./ExpiryQueue.js";
import type { Usage } from "../../machines/scope.js";

/** What sluice remembers of an admitted, unreported call. */
export interface LeaseRecord {
  id: string;
  key: string;
  model: string;
  /** Every scope the admission counted against. */
  scopes: string[];
  /** Scopes in which the lease holds a concurrency slot. */
  held: string[];
  /** Scopes whose breaker was half-open at admission (the lease is a probe there). */
  probes: string[];
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

/**
 * Live leases with their expiry order (a binary min-heap), an index of the leases
 * holding slots per scope, and tombstones of settled leases.
 */
export class LeaseTable {
  private readonly live = new Map<string, LeaseRecord>();
  private heap: LeaseRecord[] = [];
  private readonly holding = new Map<string, Set<LeaseRecord>>();
  private readonly tombs = new Map<string, LeaseTombstone>();
  /** Tombstone ids in the order buried, with their time, for pruning. */
  private readonly tombOrder = new ExpiryQueue<string>();

  constructor(private readonly maxTombstones = 1_000_000) {}

  /** Live leases. */
  get size(): number {
    return this.live.size;
  }

  get(id: string): LeaseRecord | undefined {
    return this.live.get(id);
  }

  tombstone(id: string): LeaseTombstone | undefined {
    return this.tombs.get(id);
  }

  add(rec: LeaseRecord): void {
    this.live.set(rec.id, rec);
    this.push(rec);
    for (const s of rec.held) {
      let set = this.holding.get(s);
      if (!set) this.holding.set(s, (set = new Set()));
      set.add(rec);
    }
  }

  /** Remove a live lease (reported or expired) and leave a tombstone until `until`. */
  settle(rec: LeaseRecord, reported: boolean, until: number): void {
    if (!this.live.delete(rec.id)) return;
    for (const s of rec.held) {
      const set = this.holding.get(s);
      if (set) {
        set.delete(rec);
        if (set.size === 0) this.holding.delete(s);
      }
    }
    this.bury(rec.id, { reported, record: rec, until });
  }

  /** Remember a settled id (also for reports of unknown leases, so their repeats count once). */
  bury(id: string, tomb: LeaseTombstone): void {
    this.tombs.set(id, tomb);
    this.tombOrder.push(id, tomb.until);
    while (this.tombs.size > this.maxTombstones) {
      const oldest = this.tombOrder.shift();
      if (oldest === undefined) break;
      this.dropTomb(oldest);
    }
  }

  /** Live leases whose expiry is at or before `now`, removed from the heap (still live until settled). */
  *due(now: number): Generator<LeaseRecord> {
    while (this.heap.length > 0 && this.heap[0]!.expiresAt <= now) {
      const rec = this.pop()!;
      // A lease reported earlier has left `live`; its heap entry is stale.
      if (this.live.get(rec.id) === rec) yield rec;
    }
  }

  /** Drop tombstones past their time. */
  pruneTombstones(now: number): void {
    for (const id of this.tombOrder.popDue(now)) this.dropTomb(id, now);
  }

  /** Forget a tombstone, unless it was buried again later (then a later queue entry stands for it). */
  private dropTomb(id: string, now = Number.POSITIVE_INFINITY): void {
    const t = this.tombs.get(id);
    if (t && t.until <= now) this.tombs.delete(id);
  }


  /** The earliest expiry among leases holding a slot in `scope`. */
  earliestHeldExpiry(scope: string): number | undefined {
    const set = this.holding.get(scope);
    if (!set) return undefined;
    let min: number | undefined;
    for (const r of set) if (min === undefined || r.expiresAt < min) min = r.expiresAt;
    return min;
  }

  /** The earliest expiry of any live lease (may be a stale entry: an upper bound on the wait). */
  nextExpiry(): number | undefined {
    return this.heap[0]?.expiresAt;
  }

  /** Every live lease. */
  values(): IterableIterator<LeaseRecord> {
    return this.live.values();
  }

  private push(rec: LeaseRecord): void {
    const h = this.heap;
    h.push(rec);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.expiresAt <= h[i]!.expiresAt) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  private pop(): LeaseRecord | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.expiresAt < h[m]!.expiresAt) m = l;
        if (r < h.length && h[r]!.expiresAt < h[m]!.expiresAt) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}
