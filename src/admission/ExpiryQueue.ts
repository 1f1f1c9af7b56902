import { Fifo } from "./Fifo.js";
import { NumberFifo } from "./NumberFifo.js";

/** What ExpiryQueue needs of a queue: {@link Fifo} and {@link NumberFifo} both are one. */
interface Queue<T> {
  readonly size: number;
  push(x: T): void;
  shift(): T | undefined;
  peek(): T | undefined;
  last(): T | undefined;
}

/**
 * Keys in the order they were added, each with a time after which it may go.
 * Entries must be added with non-decreasing times (a constant TTL gives that),
 * so the expired ones are always at the front. Two queues kept in step; the times
 * (and numeric keys) in {@link NumberFifo}s, unboxed.
 */
export class ExpiryQueue<K> {
  private readonly keys: Queue<K>;
  private readonly times = new NumberFifo();

  /** @param numericKeys the keys are numbers: kept unboxed, like the times. */
  constructor(numericKeys = false) {
    this.keys = (numericKeys ? new NumberFifo() : new Fifo<K>()) as Queue<K>;
  }

  get size(): number {
    return this.keys.size;
  }

  push(key: K, at: number): void {
    this.keys.push(key);
    this.times.push(at);
  }

  /** The time of the oldest key, if any. */
  nextTime(): number | undefined {
    return this.times.peek();
  }

  /** The time of the newest key, if any. */
  lastTime(): number | undefined {
    return this.times.last();
  }

  /** Remove and return, in order, every key whose time is at or before `now`. */
  *popDue(now: number): Generator<K> {
    for (let t = this.times.peek(); t !== undefined && t <= now; t = this.times.peek()) {
      this.times.shift();
      yield this.keys.shift()!;
    }
  }

  /** Remove and return the oldest key. */
  shift(): K | undefined {
    this.times.shift();
    return this.keys.shift();
  }
}
