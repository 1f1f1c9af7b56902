/**
 * Restoring scope state after a restart: snapshots as dormant contexts (no actors),
 * then the journal entries after them, each applied to the scopes its snapshot
 * does not already include.
 */
import { type ScopeContext, scopeInit } from "../../machines/scope.js";
import { scopeStep } from "../../machines/scopeMachine.js";
import type { ScopeRegistry } from "../registry/ScopeRegistry.js";
import type { LogEntry } from "./entry.js";
import type { ScopeSnapshot } from "./SnapshotStore.js";

/**
 * A context without what does not survive a restart: leases (held slots) and the
 * budget reservations of unreported calls. The context is treated as JSON: a budget
 * (or each of a list of budgets) with a `reserved` field gets 0.
 */
export function withoutInFlight(ctx: ScopeContext): ScopeContext {
  const out: Record<string, unknown> = { ...(ctx as unknown as Record<string, unknown>), held: 0 };
  for (const field of ["budget", "budgets"]) if (field in out) out[field] = zeroReserved(out[field]);
  return out as unknown as ScopeContext;
}

function zeroReserved(b: unknown): unknown {
  if (Array.isArray(b)) return b.map(zeroReserved);
  if (b !== null && typeof b === "object" && "reserved" in b) return { ...(b as object), reserved: 0 };
  return b;
}

/** Applies snapshots and then journal entries to a registry's dormant contexts. */
export class Restorer {
  /** Sequence each scope's snapshot includes. */
  private readonly seqOf = new Map<string, number>();
  /** Scopes changed by replayed entries (to be snapshotted again). */
  readonly touched = new Set<string>();
  private minSeq = Number.POSITIVE_INFINITY;
  /** Sequence of the last complete snapshot round: every snapshot is valid up to it. */
  private roundSeq = 0;

  constructor(private readonly registry: ScopeRegistry) {}

  /**
   * Put every snapshot into the registry as a dormant context. `roundSeq`: the sequence of
   * the last complete snapshot round (a scope whose snapshot is older did not change since).
   */
  load(snaps: Iterable<ScopeSnapshot>, roundSeq = 0): number {
    this.roundSeq = roundSeq;
    let n = 0;
    for (const s of snaps) {
      n++;
      this.seqOf.set(s.scope, s.seq);
      if (s.seq < this.minSeq) this.minSeq = s.seq;
      if (s.ctx) this.registry.setDormant(s.scope, withoutInFlight(s.ctx));
    }
    return n;
  }

  /** The first journal sequence to replay: after the oldest snapshot, or 1 without snapshots. */
  get replayFrom(): number {
    return Math.max(Number.isFinite(this.minSeq) ? this.minSeq : 0, this.roundSeq) + 1;
  }

  /** Apply one entry (sequence `seq`) to each of its scopes whose snapshot predates it. */
  apply(seq: number, e: LogEntry): void {
    for (const scope of e.scopes) {
      if (seq <= Math.max(this.seqOf.get(scope) ?? 0, this.roundSeq)) continue;
      const ctx = this.registry.dormantContext(scope) ?? scopeInit(scope, this.registry.limitsFor(scope), e.ts);
      const event = e.type === "reset" ? { type: "reset" as const, what: e.what, now: e.ts } : { type: "use" as const, usage: e.usage, now: e.ts };
      this.registry.setDormant(scope, scopeStep(ctx, event).ctx);
      this.touched.add(scope);
    }
  }
}
