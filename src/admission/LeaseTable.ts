import type { Usage } from "../../machines/scope.js";
import { ExpiryQueue } from "./ExpiryQueue.js";
import { MinHeap } from "./MinHeap.js";
import { NumberFifo } from "./NumberFifo.js";

/** What sluice remembers of an admitted, unreported call. A copy: the table keeps its own. */
export interface LeaseRecord {
  readonly id: string;
  readonly key: string;
  readonly model: string;
  /** Every scope the admission counted against: `key:…` first, `model:…` second. */
  readonly scopes: readonly string[];
  /** Bit i set: the lease holds a concurrency slot in `scopes[i]`. */
  readonly heldMask: number;
  /** Bit i set: `scopes[i]`'s breaker was half-open at admission (the lease is a probe there). */
  readonly probeMask: number;
  readonly estimate: Usage;
  readonly expiresAt: number;
}

/** What is kept of a lease after it was reported or expired, so repeats count once. */
export interface LeaseTombstone {
  reported: boolean;
  record: LeaseRecord;
  /** Forget the tombstone after this time. */
  until: number;
}

/** Is bit `i` of `mask` set? */
export function hasBit(mask: number, i: number): boolean {
  return ((mask >>> i) & 1) === 1;
}

/** Slots of one table: live leases and tombstones of this instance together (2^23). */
const SLOTS = 0x800000;
/** Generations per slot before they wrap (2^30): a handle `gen·SLOTS + slot` stays below 2^53. */
const GENS = 0x40000000;
const FIRST_CAPACITY = 1024;
/** Emptied holding queues kept for reuse: at most this many, each of at most this capacity. */
const MAX_SPARE_QUEUES = 1024;
const SPARE_QUEUE_CAPACITY = 64;

const FREE = 0;
const LIVE = 1;
const EXPIRED = 2;
const REPORTED = 3;

/** Is a slot in this state a tombstone (expired or reported)? */
function isTomb(state: number): boolean {
  return state === EXPIRED || state === REPORTED;
}

/** A lease of this table, as read at one moment. */
class OwnLease implements LeaseRecord {
  constructor(
    private readonly prefix: string,
    /** Slot and generation: stale once the slot is freed. */
    readonly handle: number,
    readonly scopes: readonly string[],
    readonly heldMask: number,
    readonly probeMask: number,
    readonly estimate: Usage,
    readonly expiresAt: number,
  ) {}

  get id(): string {
    return this.prefix + this.handle.toString(36);
  }

  get key(): string {
    return this.scopes[0]!.slice(4);
  }

  get model(): string {
    return this.scopes[1]!.slice(6);
  }
}

/** A tombstone of a lease this table never issued (a report for an unknown lease, a replayed journal entry). */
interface ForeignTomb extends LeaseTombstone {
  id: string;
}

export interface LeaseTableOptions {
  /** Start of every lease id this table issues; ids without it are never its own. */
  prefix: string;
  /** Most live leases the caller will add (it checks {@link LeaseTable.size} first). */
  maxLeases: number;
  /** Most tombstones kept (of its own leases, and as many of foreign ids); the oldest go first. */
  maxTombstones: number;
}

/**
 * Live leases and the tombstones of settled ones.
 *
 * A lease of this table lives in a slot of parallel typed arrays (times, estimate,
 * held and probe masks) plus one reference to its scope list, which the scopes'
 * contexts share. Its id is the table's prefix and `gen·2^23 + slot` in base 36, so
 * finding a lease by id is arithmetic, not a Map; the generation, bumped whenever
 * a slot is freed, makes an id stale once its tombstone is gone. Nothing per lease
 * is a heap object of its own: leases are what lives longest of what an admission
 * makes, and a few hundred bytes of objects each, promoted by every young-generation
 * collection, were a quarter of the core's time.
 *
 * Expiry order: leases get `now + leaseTtlMs`, so they nearly always arrive in
 * expiry order and wait in a FIFO (O(1) each way); one that would expire before
 * the last queued (the TTL was lowered) goes to a min-heap beside it. Tombstones
 * are dropped in the order buried, likewise. Per scope, the leases holding a slot
 * there wait in a FIFO too, for the earliest expiry a refused caller is told.
 * Queues hold handles, checked against the slot when they come up: a lease
 * settled meanwhile leaves a stale entry that is skipped.
 */
export class LeaseTable {
  private readonly prefix: string;
  private readonly maxTombstones: number;
  private cap = 0;
  /** Slots handed out at least once (the rest of the capacity is untouched). */
  private used = 0;
  private gen = new Uint32Array(0);
  private state = new Uint8Array(0);
  private expires = new Float64Array(0);
  private untils = new Float64Array(0);
  private tokens = new Float64Array(0);
  private costs = new Float64Array(0);
  private held = new Uint32Array(0);
  private probes = new Uint32Array(0);
  private scopes: (readonly string[] | undefined)[] = [];
  /** Freed slots, a stack. */
  private freeSlots = new Int32Array(0);
  private freeCount = 0;

  private liveCount = 0;
  private tombCount = 0;
  /** Handles in expiry order, with their expiry. */
  private readonly order = new ExpiryQueue<number>(true);
  private readonly early = new MinHeap<{ at: number; handle: number }>((a, b) => a.at < b.at);
  private readonly holding = new Map<string, NumberFifo>();
  /** Emptied small holding queues, reused: most keys hold a lease or two at a time, again and again. */
  private readonly spareQueues: NumberFifo[] = [];
  /** Handles of tombstones in the order buried, each with the time it was buried until. */
  private readonly tombs = new ExpiryQueue<number>(true);

  private readonly foreign = new Map<string, ForeignTomb>();
  private readonly foreignOrder = new ExpiryQueue<string>();

  constructor(opts: LeaseTableOptions) {
    if (opts.maxLeases + opts.maxTombstones > SLOTS) {
      throw new RangeError(`maxLeases + maxTombstones: at most ${SLOTS} (got ${opts.maxLeases + opts.maxTombstones})`);
    }
    this.prefix = opts.prefix;
    this.maxTombstones = opts.maxTombstones;
  }

  /** Live leases. */
  get size(): number {
    return this.liveCount;
  }

  /** Tombstones kept (own and foreign). */
  get tombstones(): number {
    return this.tombCount + this.foreign.size;
  }

  /** The live lease `id`. */
  get(id: string): LeaseRecord | undefined {
    const h = this.handleOf(id);
    return h >= 0 && this.stateOf(h) === LIVE ? this.view(h) : undefined;
  }

  /** Is `rec` (as returned by this table) still live? */
  isLive(rec: LeaseRecord): boolean {
    return rec instanceof OwnLease && this.stateOf(rec.handle) === LIVE;
  }

  tombstone(id: string): LeaseTombstone | undefined {
    const h = this.handleOf(id);
    const st = h >= 0 ? this.stateOf(h) : FREE;
    if (st === LIVE) return undefined;
    if (isTomb(st)) return { reported: st === REPORTED, until: this.untils[h % SLOTS]!, record: this.view(h) };
    return this.foreign.get(id);
  }

  /**
   * Add a live lease and return its id. `scopes` is kept as given (share it, don't copy);
   * it starts with the lease's `key:…` and `model:…` scopes.
   */
  add(scopes: readonly string[], heldMask: number, probeMask: number, tokens: number, cost: number, expiresAt: number): string {
    if (!scopes[0]?.startsWith("key:") || !scopes[1]?.startsWith("model:")) throw new TypeError("scopes: key:… and model:… first");
    const slot = this.allocate();
    const h = this.gen[slot]! * SLOTS + slot;
    this.state[slot] = LIVE;
    this.expires[slot] = expiresAt;
    this.tokens[slot] = tokens;
    this.costs[slot] = cost;
    this.held[slot] = heldMask;
    this.probes[slot] = probeMask;
    this.scopes[slot] = scopes;
    this.liveCount++;
    const last = this.order.lastTime();
    if (last === undefined || last <= expiresAt) this.order.push(h, expiresAt);
    else this.early.push({ at: expiresAt, handle: h });
    for (let i = 0; heldMask !== 0 && i < scopes.length; i++) {
      if (!hasBit(heldMask, i)) continue;
      const s = scopes[i]!;
      let q = this.holding.get(s);
      if (!q) this.holding.set(s, (q = this.spareQueues.pop() ?? new NumberFifo(4)));
      q.push(h);
    }
    return this.prefix + h.toString(36);
  }

  /** Remove a live lease (reported or expired) and leave a tombstone until `until`. */
  settle(rec: LeaseRecord, reported: boolean, until: number): void {
    if (!(rec instanceof OwnLease) || this.stateOf(rec.handle) !== LIVE) return;
    const slot = rec.handle % SLOTS;
    this.state[slot] = reported ? REPORTED : EXPIRED;
    this.liveCount--;
    const mask = this.held[slot]!;
    const scopes = this.scopes[slot]!;
    for (let i = 0; mask !== 0 && i < scopes.length; i++) {
      if (!hasBit(mask, i)) continue;
      const q = this.holding.get(scopes[i]!);
      if (!q) continue;
      for (let f = q.peek(); f !== undefined && this.stateOf(f) !== LIVE; f = q.peek()) q.shift();
      if (q.size === 0) {
        this.holding.delete(scopes[i]!);
        if (q.capacity <= SPARE_QUEUE_CAPACITY && this.spareQueues.length < MAX_SPARE_QUEUES) this.spareQueues.push(q);
      }
    }
    this.untils[slot] = until;
    this.tombs.push(rec.handle, until);
    this.tombCount++;
    while (this.tombCount > this.maxTombstones) {
      const oldest = this.tombs.shift();
      if (oldest === undefined) break;
      this.dropTomb(oldest, Number.POSITIVE_INFINITY);
    }
  }

  /** Remember a settled id (also for reports of unknown leases, so their repeats count once). */
  bury(id: string, tomb: LeaseTombstone): void {
    const h = this.handleOf(id);
    const st = h >= 0 ? this.stateOf(h) : FREE;
    if (st === LIVE) return;
    if (isTomb(st)) {
      // Buried again (a late report): the same lease, a later time.
      const slot = h % SLOTS;
      this.state[slot] = tomb.reported ? REPORTED : EXPIRED;
      this.untils[slot] = tomb.until;
      this.tombs.push(h, tomb.until);
      return;
    }
    const prior = this.foreign.get(id);
    if (prior) {
      prior.reported = tomb.reported;
      prior.until = tomb.until;
      prior.record = tomb.record;
    } else this.foreign.set(id, { id, reported: tomb.reported, until: tomb.until, record: tomb.record });
    this.foreignOrder.push(id, tomb.until);
    while (this.foreign.size > this.maxTombstones) {
      const oldest = this.foreignOrder.shift();
      if (oldest === undefined) break;
      this.dropForeign(oldest, Number.POSITIVE_INFINITY);
    }
  }

  /** Live leases whose expiry is at or before `now`, removed from the expiry order (still live until settled). */
  *due(now: number): Generator<LeaseRecord> {
    for (;;) {
      const a = this.order.nextTime();
      const b = this.early.peek();
      let h: number;
      if (a !== undefined && a <= now && (b === undefined || a <= b.at)) h = this.order.shift()!;
      else if (b !== undefined && b.at <= now) h = this.early.pop()!.handle;
      else return;
      // A lease reported earlier is a tombstone now (or its slot is free again); its place in the order is stale.
      if (this.stateOf(h) === LIVE) yield this.view(h);
    }
  }

  /** Is a lease due to expire, or a tombstone to be dropped, at `now`? (Cheap: looks at the fronts only.) */
  anyDue(now: number): boolean {
    const next = this.nextExpiry();
    if (next !== undefined && next <= now) return true;
    const t = this.tombs.nextTime();
    if (t !== undefined && t <= now) return true;
    const f = this.foreignOrder.nextTime();
    return f !== undefined && f <= now;
  }

  /** Drop tombstones past their time. */
  pruneTombstones(now: number): void {
    for (let t = this.tombs.nextTime(); t !== undefined && t <= now; t = this.tombs.nextTime()) this.dropTomb(this.tombs.shift()!, now);
    for (let t = this.foreignOrder.nextTime(); t !== undefined && t <= now; t = this.foreignOrder.nextTime()) this.dropForeign(this.foreignOrder.shift()!, now);
  }

  /** The expiry of the oldest live lease holding a slot in `scope` (the earliest, leases sharing one TTL). */
  earliestHeldExpiry(scope: string): number | undefined {
    const q = this.holding.get(scope);
    if (!q) return undefined;
    let min: number | undefined;
    let looked = 0;
    for (const h of q) {
      if (this.stateOf(h) === LIVE) {
        const at = this.expires[h % SLOTS]!;
        if (min === undefined || at < min) min = at;
      }
      // In TTL order the first live one is the earliest; look a little further for a lowered TTL.
      if (++looked > 16) break;
    }
    return min;
  }

  /** The earliest expiry of any live lease (may be a stale entry: an upper bound on the wait). */
  nextExpiry(): number | undefined {
    const a = this.order.nextTime();
    const b = this.early.peek()?.at;
    if (a === undefined) return b;
    return b === undefined ? a : Math.min(a, b);
  }

  /** Every live lease. */
  *values(): IterableIterator<LeaseRecord> {
    for (let slot = 0; slot < this.used; slot++) if (this.state[slot] === LIVE) yield this.view(this.gen[slot]! * SLOTS + slot);
  }

  // ---- internals ----

  /** The handle an id of this table names, or -1 (not this table's, malformed, or beyond what was issued); it may be stale. */
  private handleOf(id: string): number {
    if (id.length <= this.prefix.length || id.length > this.prefix.length + 11 || !id.startsWith(this.prefix)) return -1;
    const rest = id.slice(this.prefix.length);
    const h = Number.parseInt(rest, 36);
    if (!Number.isSafeInteger(h) || h < 0 || h.toString(36) !== rest) return -1;
    return h % SLOTS < this.used ? h : -1;
  }

  /** The state of the slot of `h`, or FREE when the handle is stale. */
  private stateOf(h: number): number {
    const slot = h % SLOTS;
    return this.gen[slot] === (h - slot) / SLOTS ? this.state[slot]! : FREE;
  }

  private view(h: number): OwnLease {
    const slot = h % SLOTS;
    const estimate: Usage = { tokens: this.tokens[slot]!, cost: this.costs[slot]!, requests: 1 };
    return new OwnLease(this.prefix, h, this.scopes[slot]!, this.held[slot]!, this.probes[slot]!, estimate, this.expires[slot]!);
  }

  /** Forget an own tombstone, unless it was buried for longer since (or its slot is no tombstone). */
  private dropTomb(h: number, now: number): void {
    if (!isTomb(this.stateOf(h))) return;
    const slot = h % SLOTS;
    if (this.untils[slot]! > now) return;
    this.state[slot] = FREE;
    this.scopes[slot] = undefined;
    this.gen[slot] = (this.gen[slot]! + 1) % GENS;
    this.freeSlots[this.freeCount++] = slot;
    this.tombCount--;
  }

  private dropForeign(id: string, now: number): void {
    const t = this.foreign.get(id);
    if (t && t.until <= now) this.foreign.delete(id);
  }

  private allocate(): number {
    if (this.freeCount > 0) return this.freeSlots[--this.freeCount]!;
    if (this.used === this.cap) this.grow();
    return this.used++;
  }

  private grow(): void {
    const cap = Math.min(SLOTS, Math.max(FIRST_CAPACITY, this.cap * 2));
    if (cap === this.cap) throw new RangeError("lease table full");
    const widen = <A extends Uint8Array | Uint32Array | Int32Array | Float64Array>(a: A, make: (n: number) => A): A => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.gen = widen(this.gen, (n) => new Uint32Array(n));
    this.state = widen(this.state, (n) => new Uint8Array(n));
    this.expires = widen(this.expires, (n) => new Float64Array(n));
    this.untils = widen(this.untils, (n) => new Float64Array(n));
    this.tokens = widen(this.tokens, (n) => new Float64Array(n));
    this.costs = widen(this.costs, (n) => new Float64Array(n));
    this.held = widen(this.held, (n) => new Uint32Array(n));
    this.probes = widen(this.probes, (n) => new Uint32Array(n));
    this.freeSlots = widen(this.freeSlots, (n) => new Int32Array(n));
    this.cap = cap;
  }
}
