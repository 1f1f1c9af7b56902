/**
 * The smallest honest limiter: one plain object per bucket in a Map, refilled
 * lazily from the clock, with all-or-nothing admission over several buckets.
 * The in-process bench runs it beside sluice's core (registry + actors) with
 * the same key and model request rates, so the cost of the actor model shows.
 */
export interface PlainLimit {
  /** Capacity (a period's worth, as sluice's `rpm` without `burst`). */
  burst: number;
  /** Refill per ms. */
  perMs: number;
}

interface Bucket {
  level: number;
  at: number;
  readonly limit: PlainLimit;
}

export class PlainBuckets {
  private readonly buckets = new Map<string, Bucket>();
  constructor(private readonly limitOf: (name: string) => PlainLimit) {}

  /** The bucket of `name`, refilled to `now` (created full on first use). */
  private bucket(name: string, now: number): Bucket {
    let b = this.buckets.get(name);
    if (!b) {
      const limit = this.limitOf(name);
      this.buckets.set(name, (b = { level: limit.burst, at: now, limit }));
    }
    b.level = Math.min(b.limit.burst, b.level + Math.max(0, now - b.at) * b.limit.perMs);
    b.at = Math.max(b.at, now);
    return b;
  }

  /** Take `amount` from every bucket named, or from none when one lacks it. */
  tryTake(names: readonly string[], amount: number, now: number): boolean {
    const bs = names.map((n) => this.bucket(n, now));
    if (bs.some((b) => b.level < amount)) return false;
    for (const b of bs) b.level -= amount;
    return true;
  }
}
