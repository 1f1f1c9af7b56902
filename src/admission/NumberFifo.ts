/**
 * A first-in first-out queue of numbers: a ring over a Float64Array that doubles
 * when full. Push and shift are an index and a store, with nothing allocated:
 * the lease table pushes several handles and times per admission, and a queue
 * over a JS array paid for growing and compacting its array (about 6% of the
 * core in a CPU profile of `corework --chunk=100`).
 */
export class NumberFifo {
  private buf: Float64Array;
  /** Index of the oldest item. */
  private head = 0;
  private count = 0;

  /** @param capacity initial room, a power of two */
  constructor(capacity = 16) {
    if (capacity < 1 || (capacity & (capacity - 1)) !== 0) throw new RangeError(`capacity: a power of two (got ${capacity})`);
    this.buf = new Float64Array(capacity);
  }

  get size(): number {
    return this.count;
  }

  /** Room before the next push grows the ring. */
  get capacity(): number {
    return this.buf.length;
  }

  /** The oldest item. */
  peek(): number | undefined {
    return this.count > 0 ? this.buf[this.head] : undefined;
  }

  /** The newest item. */
  last(): number | undefined {
    return this.count > 0 ? this.buf[(this.head + this.count - 1) & (this.buf.length - 1)] : undefined;
  }

  push(x: number): void {
    if (this.count === this.buf.length) this.grow();
    this.buf[(this.head + this.count) & (this.buf.length - 1)] = x;
    this.count++;
  }

  shift(): number | undefined {
    if (this.count === 0) return undefined;
    const x = this.buf[this.head]!;
    this.head = (this.head + 1) & (this.buf.length - 1);
    this.count--;
    return x;
  }

  /** The items, oldest first. */
  *[Symbol.iterator](): Generator<number> {
    for (let i = 0; i < this.count; i++) yield this.buf[(this.head + i) & (this.buf.length - 1)]!;
  }

  private grow(): void {
    const mask = this.buf.length - 1;
    const next = new Float64Array(this.buf.length * 2);
    for (let i = 0; i < this.count; i++) next[i] = this.buf[(this.head + i) & mask]!;
    this.buf = next;
    this.head = 0;
  }
}
