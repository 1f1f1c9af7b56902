import type { Decision } from "../protocol/decision.js";
import type { AdmitRequest } from "../protocol/schemas.js";

/** An admission waiting in sluice's queue for room. */
export interface Waiter {
  seq: number;
  req: AdmitRequest;
  scopes: string[];
  deadline: number;
  resolve: (d: Decision) => void;
  /** The last refusal, handed to callers that may not jump the queue. */
  last?: Decision;
}

/**
 * Waiting admissions in arrival order, with a count per scope so that a new
 * arrival can see whether a scope has callers queued before it.
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

  /** Is any caller waiting on one of `scopes`? */
  blocks(scopes: readonly string[]): Waiter | undefined {
    if (this.queue.size === 0) return undefined;
    for (const s of scopes) {
      if (this.perScope.has(s)) {
        for (const w of this.queue.values()) if (w.scopes.includes(s)) return w;
      }
    }
    return undefined;
  }

  add(w: Omit<Waiter, "seq">): Waiter {
    const waiter = { ...w, seq: ++this.seq };
    this.queue.set(waiter.seq, waiter);
    for (const s of waiter.scopes) this.perScope.set(s, (this.perScope.get(s) ?? 0) + 1);
    return waiter;
  }

  remove(w: Waiter): void {
    if (!this.queue.delete(w.seq)) return;
    for (const s of w.scopes) {
      const n = (this.perScope.get(s) ?? 1) - 1;
      if (n <= 0) this.perScope.delete(s);
      else this.perScope.set(s, n);
    }
  }

  /** Waiters in arrival order (a snapshot: safe to remove while iterating). */
  inOrder(): Waiter[] {
    return [...this.queue.values()];
  }
}
