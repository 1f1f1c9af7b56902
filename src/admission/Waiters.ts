import type { Decision } from "../protocol/decision.js";
import type { AdmitRequest } from "../protocol/schemas.js";

/** An admission waiting in sluice's queue for room. */
export interface Waiter {
  seq: number;
  req: AdmitRequest;
  scopes: string[];
  /**
   * The scopes it holds a place in the queue of: those that refused it, or that it is queued behind
   * earlier callers on. Later callers on these wait their turn; its other scopes stay open to them.
   */
  queuedOn: string[];
  deadline: number;
  resolve: (d: Decision) => void;
  /** Fail the wait (shutdown). */
  reject: (e: Error) => void;
  /** The last refusal, handed to callers that may not jump the queue. */
  last?: Decision;
}

/**
 * Waiting admissions in arrival order, with a count per scope (of the scopes each
 * waiter is queued on) so that a new arrival can see whether a scope has callers
 * queued before it.
 */
export class Waiters {
  private readonly queue = new Map<number, Waiter>();
  /** The callers queued on each scope (their count is the set's size). */
  private readonly perScope = new Map<string, Set<Waiter>>();
  private seq = 0;

  constructor(readonly max: number) {}

  get size(): number {
    return this.queue.size;
  }

  get full(): boolean {
    return this.queue.size >= this.max;
  }

  /** Is any caller queued on one of `scopes`? */
  blocks(scopes: readonly string[]): Waiter | undefined {
    if (this.queue.size === 0) return undefined;
    for (const s of scopes) {
      const set = this.perScope.get(s);
      if (!set) continue;
      // The earliest arrival among those queued on this scope (only they are looked at, not the whole queue).
      let first: Waiter | undefined;
      for (const w of set) if (!first || w.seq < first.seq) first = w;
      return first;
    }
    return undefined;
  }

  /** Those of `scopes` that some caller is queued on. */
  queuedScopes(scopes: readonly string[]): string[] {
    return scopes.filter((s) => this.perScope.has(s));
  }

  add(w: Omit<Waiter, "seq">): Waiter {
    const waiter = { ...w, seq: ++this.seq };
    this.queue.set(waiter.seq, waiter);
    this.index(waiter, waiter.queuedOn, true);
    return waiter;
  }

  /** The caller is now queued on `queuedOn` (after another try, or behind others). */
  requeue(w: Waiter, queuedOn: string[]): void {
    if (!this.queue.has(w.seq)) return;
    this.index(w, w.queuedOn, false);
    w.queuedOn = queuedOn;
    this.index(w, queuedOn, true);
  }

  remove(w: Waiter): void {
    if (!this.queue.delete(w.seq)) return;
    this.index(w, w.queuedOn, false);
  }

  private index(w: Waiter, scopes: readonly string[], add: boolean): void {
    for (const s of scopes) {
      let set = this.perScope.get(s);
      if (add) {
        if (!set) this.perScope.set(s, (set = new Set()));
        set.add(w);
      } else if (set) {
        set.delete(w);
        if (set.size === 0) this.perScope.delete(s);
      }
    }
  }

  /** Waiters in arrival order (a snapshot: safe to remove while iterating). */
  inOrder(): Waiter[] {
    return [...this.queue.values()];
  }
}
