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
  private readonly perScope = new Map<string, number>();
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
      if (this.perScope.has(s)) {
        for (const w of this.queue.values()) if (w.queuedOn.includes(s)) return w;
      }
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
    this.count(waiter.queuedOn, 1);
    return waiter;
  }

  /** The caller is now queued on `queuedOn` (after another try, or behind others). */
  requeue(w: Waiter, queuedOn: string[]): void {
    if (!this.queue.has(w.seq)) return;
    this.count(w.queuedOn, -1);
    w.queuedOn = queuedOn;
    this.count(queuedOn, 1);
  }

  remove(w: Waiter): void {
    if (!this.queue.delete(w.seq)) return;
    this.count(w.queuedOn, -1);
  }

  private count(scopes: readonly string[], by: 1 | -1): void {
    for (const s of scopes) {
      const n = (this.perScope.get(s) ?? 0) + by;
      if (n <= 0) this.perScope.delete(s);
      else this.perScope.set(s, n);
    }
  }

  /** Waiters in arrival order (a snapshot: safe to remove while iterating). */
  inOrder(): Waiter[] {
    return [...this.queue.values()];
  }
}
