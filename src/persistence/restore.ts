/**
 * Restoring scope state after a restart: snapshots as dormant contexts (no actors),
 * then the journal entries after them, each applied to the scopes its snapshot
 * does not already include.
 */
import type { ResolvedLimits } from "../../machines/policy.js";
import { type ScopeContext, scopeAwaitedChangeAt, scopeInit, scopeIsPristineAt } from "../../machines/scope.js";
import { scopeStep } from "../../machines/scopeMachine.js";
import { resolvedLimitsSchema } from "../protocol/policySchema.js";
import { describeZodError } from "../protocol/schemas.js";
import type { ScopeRegistry } from "../registry/ScopeRegistry.js";
import { contextFault } from "./contextFault.js";
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
  /** One limits object per distinct limits among the snapshots (by their JSON), or why they are not limits. */
  private readonly limitsByJson = new Map<string, ResolvedLimits | { fault: string }>();
  /** The limits stored apart (`l.<id>` in the bucket), by id, as read; see {@link setStoredLimits}. */
  private storedLimits: ReadonlyMap<string, unknown> = new Map();
  /** {@link shared} of each stored limits id met so far. */
  private readonly limitsById = new Map<string, ResolvedLimits | { fault: string }>();

  /** Snapshots left out because time had brought them back to defaults by `now`. */
  skipped = 0;
  /** Snapshots left out because they could not be read as ones sluice writes (see {@link unreadable}). */
  unreadableCount = 0;
  /** The first few of them: the KV key or scope, and what was wrong. */
  readonly unreadableExamples: string[] = [];

  /** Restored scopes in a state that time ends (an open breaker, an exhausted budget), for {@link watch}. */
  private readonly awaiting: string[] = [];

  /**
   * @param now the time of the restart: a snapshot that holds nothing but defaults by then
   *   (buckets refilled, budget periods over) is left out, as the Passivator would drop it.
   *   Undefined: every snapshot is kept.
   * @param watch told, once the replay is over, of each restored scope that is in a state
   *   time ends (an open breaker, an exhausted budget), so that it is ticked then (StateWakes).
   */
  constructor(
    private readonly registry: ScopeRegistry,
    private readonly now?: number,
    private readonly watch?: (scope: string, ctx: ScopeContext) => void,
  ) {}

  /**
   * Put every snapshot into the registry as a dormant context. `roundSeq`: the sequence of
   * the last complete snapshot round (a scope whose snapshot is older did not change since).
   */
  load(snaps: Iterable<ScopeSnapshot>, roundSeq = 0): number {
    this.setRoundSeq(roundSeq);
    let n = 0;
    for (const s of snaps) {
      this.add(s);
      n++;
    }
    return n;
  }

  /** The limits stored apart in the bucket, by id: snapshots that name one (`lim`) carry none of their own. */
  setStoredLimits(limits: ReadonlyMap<string, unknown>): void {
    this.storedLimits = limits;
    this.limitsById.clear();
  }

  /** Set the sequence of the last complete snapshot round (see {@link load}). */
  setRoundSeq(roundSeq: number): void {
    this.roundSeq = roundSeq;
  }

  /**
   * Put one snapshot into the registry as a dormant context, packed as passivation packs
   * one: a restart with millions of snapshots must fit the heap they were taken in.
   */
  add(s: ScopeSnapshot): void {
    let limits: ResolvedLimits | undefined;
    // `ctx: null` marks a scope dropped as pristine; anything else must be a context.
    if (s.ctx !== null) {
      // Checked before anything is kept: a context that is not one sluice writes would throw
      // in the actor that wakes with it. Its scope starts again from the journal entries after
      // the last round, as if it had no snapshot. One stored without limits wakes with the
      // policy's, so its state is checked against those.
      let shared: ResolvedLimits | { fault: string } | undefined;
      if (s.lim !== undefined) {
        shared = this.byId(s.scope, s.lim);
        if (!shared) {
          this.unreadable(`${s.scope}: lim ${JSON.stringify(s.lim)}, limits not in the bucket`);
          return;
        }
      } else {
        const own = typeof s.ctx === "object" ? (s.ctx as { limits?: unknown }).limits : undefined;
        shared = own === undefined || own === null ? undefined : this.shared(s.scope, own);
      }
      const fault = shared && "fault" in shared ? shared.fault : contextFault(s.ctx, s.scope, shared ?? this.registry.limitsFor(s.scope));
      if (fault !== undefined) {
        this.unreadable(`${s.scope}: ctx.${fault}`);
        return;
      }
      limits = shared as ResolvedLimits | undefined;
    }
    this.seqOf.set(s.scope, s.seq);
    if (s.seq < this.minSeq) this.minSeq = s.seq;
    if (s.ctx === null) return;
    const ctx = withoutInFlight(s.ctx);
    ctx.limits = limits as ResolvedLimits;
    // Judged under the limits it will wake with: the policy may have changed while sluice was
    // down (a budget period lengthened: under the old one it would read as over, its usage lost).
    const woken = this.now !== undefined || this.watch ? this.registry.underPolicy(s.scope, ctx) : ctx;
    if (this.now !== undefined && scopeIsPristineAt(woken, this.now)) {
      this.skipped++;
      return;
    }
    this.registry.setDormant(s.scope, ctx, true);
    if (this.watch && scopeAwaitedChangeAt(woken) !== null) this.awaiting.push(s.scope);
  }

  /** The limits stored under `id`, checked once: undefined when the bucket has none. */
  private byId(scope: string, id: string): ResolvedLimits | { fault: string } | undefined {
    let one = this.limitsById.get(id);
    if (one) return one;
    const raw = this.storedLimits.get(id);
    if (raw === undefined) return undefined;
    one = this.shared(scope, raw);
    this.limitsById.set(id, one);
    return one;
  }

  /**
   * The one object for limits equal to `limits`: the registry's own for `scope` where they
   * are the policy's now. Each snapshot's context comes with limits of its own, parsed from
   * its JSON; a million copies of the same limits would take more memory than the scopes,
   * and their contexts could not share a packed structure (see DormantStore).
   */
  private shared(scope: string, limits: unknown): ResolvedLimits | { fault: string } {
    const json = JSON.stringify(limits);
    let one = this.limitsByJson.get(json);
    if (!one) {
      const current = this.registry.limitsFor(scope);
      if (JSON.stringify(current) === json) one = current;
      else {
        const r = resolvedLimitsSchema.safeParse(limits);
        one = r.success ? (limits as ResolvedLimits) : { fault: `limits.${describeZodError(r.error)}` };
      }
      this.limitsByJson.set(json, one);
    }
    return one;
  }

  /** Count a snapshot that could not be read (`what`: its key or scope, and why), keeping the first few. */
  unreadable(what: string): void {
    this.unreadableCount++;
    if (this.unreadableExamples.length < 5) this.unreadableExamples.push(what);
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

  /** After the replay: pack the contexts it updated (kept as objects while it ran). */
  finish(): void {
    for (const scope of this.touched) {
      const ctx = this.registry.dormantContext(scope);
      if (ctx) this.registry.setDormant(scope, ctx, true);
    }
    // Only now, with every entry applied: a scope ticked before its replay would take old usage into a new period.
    const watch = this.watch;
    if (!watch) return;
    for (const scope of new Set([...this.awaiting, ...this.touched])) {
      const ctx = this.registry.dormantContext(scope);
      if (ctx) watch(scope, ctx);
    }
    this.awaiting.length = 0;
  }
}
