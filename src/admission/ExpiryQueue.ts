/**
 * Keys in the order they were added, each with a time after which it may go.
 * Entries must be added with non-decreasing times (a constant TTL gives that),
 * so the expired ones are always at the front.
 *
 * Why not walk a Map from its start: V8 leaves deleted Map entries as holes
 * until it rehashes, so after many deletions at the front every walk passes over
 * all of them again; a queue with a head index does not.
 */
export class ExpiryQueue<K> {
  private keys: K[] = [];
  private times: number[] = [];
  private head = 0;

  get size(): number {
    return this.keys.length - this.head;
  }

  push(key: K, at: number): void {
    this.keys.push(key);
    this.times.push(at);
  }

  /** The time of the oldest key, if any. */
  nextTime(): number | undefined {
    return this.head < this.times.length ? this.times[this.head] : undefined;
  }

  /** Remove and return, in order, every key whose time is at or before `now`. */
  *popDue(now: number): Generator<K> {
    while (this.head < this.keys.length && this.times[this.head]! <= now) {
      const k = this.keys[this.head]!;
      this.keys[this.head] = undefined as K;
      this.head++;
      yield k;
    }
    this.compact();
  }

  /** Remove and return the oldest key. */
  shift(): K | undefined {
    if (this.head >= this.keys.length) return undefined;
    const k = this.keys[this.head]!;
    this.keys[this.head] = undefined as K;
    this.head++;
    this.compact();
    return k;
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.keys.length) {
      this.keys = this.keys.slice(this.head);
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
  }
}
