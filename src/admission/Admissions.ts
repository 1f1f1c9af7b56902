import { Subject } from "rxjs";
import { DEFAULT_JITTER, DEFAULT_LEASE_TTL_MS, type PolicyDocument, limitsHoldState } from "../../machines/policy.js";
import { type Demand, type LimitInfo, NO_HINTS, type Outcome, type ResetWhat, type ScopeContext, type ScopeHints, type ScopeVerdict, type Settlement, type Usage, scopeCheck, scopeHoldsSlots, scopeSlotLimit, settlementMatters } from "../../machines/scope.js";
import type { ScopeEvent } from "../../machines/scopeMachine.js";
import type { Clock } from "../clock.js";
import type { Decision, DecisionEvent, ReportAck } from "../protocol/decision.js";
import { SluiceRequestError, badRequest, unavailable } from "../protocol/errors.js";
import type { AdmitRequest, LimitsMode, Report } from "../protocol/schemas.js";
import type { ScopeActor, ScopeRegistry } from "../registry/ScopeRegistry.js";
import { type JournalEntry, type LogEntry, type ResetEntry, type UsageJournal, entryMsgID } from "../persistence/entry.js";
import { ExpiryQueue } from "./ExpiryQueue.js";
import { PackedDecision } from "./PackedDecision.js";
import { type LeaseRecord, LeaseTable, type LeaseTombstone, hasBit } from "./LeaseTable.js";
import { type Waiter, Waiters } from "./Waiters.js";

/** Longest retry hint for a concurrency refusal, ms: slots usually free by report long before their lease expires. */
export const CONCURRENCY_RETRY_HINT_MS = 1_000;

/** Defaults of {@link AdmissionsOptions}. */
export const DEFAULT_ADMISSIONS = {
  /** Most admissions waiting in the queue at once; past it: `unavailable`. */
  maxWaiters: 10_000,
  /** Most live leases; past it: `unavailable`. */
  maxLeases: 1_000_000,
  /** Most tombstones of settled leases (and as many of reports for unknown ones). */
  maxTombstones: 1_000_000,
  /** Most remembered idempotency ids. */
  maxRecent: 1_000_000,
  /** Most scopes one admission may count against (named plus parents). */
  maxScopesPerAdmission: 32,
  /** Most journal appends in flight; past it reports are answered `unavailable`. */
  maxPendingAppends: 10_000,
  /** How long after a lease's expiry the expiry timer may run, ms (see {@link AdmissionsOptions.expirySlackMs}). */
  expirySlackMs: 0,
} as const;

/** How long to wait before journaling a lease's expiry again after a failure, ms. */
export const EXPIRY_RETRY_MS = 1_000;

export interface AdmissionsOptions {
  registry: ScopeRegistry;
  clock: Clock;
  /** Source of jitter; inject a seeded one in tests. Default Math.random. */
  random?: () => number;
  maxWaiters?: number;
  maxLeases?: number;
  maxRecent?: number;
  /** Journal reports and expiries before applying them (see {@link Admissions.reportDurably}). Default: none, applied at once. */
  journal?: UsageJournal;
  /** Most appends in flight. Default {@link DEFAULT_ADMISSIONS.maxPendingAppends}. */
  maxPendingAppends?: number;
  /** Told of every scope sent an event that may change its context, for snapshots. */
  changed?: (scope: string) => void;
  /**
   * Is the process short of memory (its heap near its ceiling)? While it is, an admission
   * that would bring a scope to life or remember an id is refused `unavailable`; the rest
   * are served. Default: never.
   */
  memoryShort?: () => boolean;
  /**
   * How late the expiry timer may run after a lease's expiry, ms. Every admission and
   * report first expires what is due at its own `now`, and a caller queued for a slot is
   * woken at the expiry it waits for, so no decision sees an expired lease either way;
   * with slack, expiries under load are settled in the turns of the admissions that
   * arrive meanwhile instead of in a timer turn of their own
   * about every millisecond. Only readers outside a decision (inspection, metrics) may see
   * an expired lease this much longer. Default {@link DEFAULT_ADMISSIONS.expirySlackMs}.
   */
  expirySlackMs?: number;
}

/** What a report would do ({@link Admissions.planReport}). */
export type ReportPlan =
  | { status: "duplicate" }
  | { status: "applied"; rep: Report; rec: LeaseRecord; entry: JournalEntry }
  | { status: "late"; rep: Report; tomb: LeaseTombstone; actual: Usage; entry: JournalEntry }
  | { status: "orphan"; rep: Report; entry: JournalEntry };

/** A report as applied, for the latency pipelines and metrics. */
export interface AppliedReport {
  at: number;
  key: string;
  model: string;
  outcome: Outcome;
  tokens: number;
  cost: number;
  ttftMs?: number;
  itlMs?: number;
  latencyMs?: number;
  status: ReportAck["status"];
}

type Attempt =
  | { admitted: true; decision: Extract<Decision, { decision: "admit" }> }
  | {
      admitted: false;
      decision: Extract<Decision, { decision: "reject" }>;
      exactRetryAfterMs?: number;
      canFreeAnytime: boolean;
      /** Every scope that refused, not only the one named in the decision. */
      refused: string[];
    };

interface Remembered {
  until: number;
  /** Packed once decided (a decision with every limit is eight objects); a waiting caller's promise until then. */
  value: PackedDecision | Promise<Decision>;
}

/**
 * Admissions and reports against the scope actors. Everything here runs
 * synchronously within one turn of the event loop per request, so the check of
 * every scope and the commit to every scope see the same state: an admission
 * passes only if every scope it names admits, and a refusal by one scope leaves
 * no trace in the others.
 */
export class Admissions {
  /** Every decision made, as published on `<p>.decisions.…`. */
  readonly decisions = new Subject<DecisionEvent>();
  /** Every report applied (not repeats). */
  readonly reports = new Subject<AppliedReport>();

  readonly leases: LeaseTable;
  private readonly waiters: Waiters;
  private readonly recent = new Map<string, Remembered>();
  /** Idempotency keys in the order remembered, for expiry (see ExpiryQueue for why not walk the Map). */
  private readonly recentOrder = new ExpiryQueue<string>();
  private readonly registry: ScopeRegistry;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly maxLeases: number;
  private readonly maxRecent: number;
  private wakeTimer: unknown = undefined;
  private wakeAt = Number.POSITIVE_INFINITY;
  private expiryTimer: unknown = undefined;
  private expiryAt = Number.POSITIVE_INFINITY;
  /** Replies held through a pacing delay: timer handle → release early (at `now`). */
  private holds = new Map<unknown, (now: number) => void>();
  private processing = false;
  private closed = false;
  /** Durable path: where reports and expiries are journaled before they are applied. */
  private readonly journal: UsageJournal | undefined;
  private readonly maxPendingAppends: number;
  private readonly expirySlackMs: number;
  private readonly changed: ((scope: string) => void) | undefined;
  private readonly memoryShort: (() => boolean) | undefined;
  private pending = 0;
  private lastAppliedSeq = 0;
  private restoredSeq = 0;
  /** Leases whose report or expiry is being journaled: resolves when that is over. */
  private readonly locked = new Map<string, Promise<void>>();
  /** Leases that fell due while their report was being journaled. */
  private readonly deferred = new Set<string>();
  /** Message ids of appends that failed (maybe stored). */
  private readonly uncertain = new Set<string>();
  private readonly retryTimers = new Set<unknown>();
  private drained: (() => void) | undefined;

  constructor(opts: AdmissionsOptions) {
    this.registry = opts.registry;
    this.clock = opts.clock;
    this.random = opts.random ?? Math.random;
    this.waiters = new Waiters(opts.maxWaiters ?? DEFAULT_ADMISSIONS.maxWaiters);
    this.maxLeases = opts.maxLeases ?? DEFAULT_ADMISSIONS.maxLeases;
    this.maxRecent = opts.maxRecent ?? DEFAULT_ADMISSIONS.maxRecent;
    this.journal = opts.journal;
    this.maxPendingAppends = opts.maxPendingAppends ?? DEFAULT_ADMISSIONS.maxPendingAppends;
    this.changed = opts.changed;
    this.memoryShort = opts.memoryShort;
    this.expirySlackMs = opts.expirySlackMs ?? DEFAULT_ADMISSIONS.expirySlackMs;
    const prefix = `L-${Math.floor(this.random() * 36 ** 6).toString(36).padStart(6, "0")}-`;
    this.leases = new LeaseTable({ prefix, maxLeases: this.maxLeases, maxTombstones: DEFAULT_ADMISSIONS.maxTombstones });
  }

  private get policy(): PolicyDocument {
    return this.registry.policy;
  }

  private get leaseTtlMs(): number {
    return this.policy.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  }

  /** Number of admissions waiting in the queue. */
  get waiting(): number {
    return this.waiters.size;
  }

  /** Are callers waiting in the queue on `scope`? (Such a scope must stay live.) */
  hasWaitersOn(scope: string): boolean {
    return this.waiters.blocks([scope]) !== undefined;
  }

  /** Decide an admission: at once, or (with `waitMs`) once there is room or the wait runs out. */
  admit(req: AdmitRequest): Decision | Promise<Decision> {
    return this.admitOne(req, this.clock.now());
  }

  /**
   * Decide several admissions in order, exactly as one `admit` after another, at one
   * `now`. A request refused as input (too many scopes, `unavailable`) gets its error
   * in its place.
   */
  admitMany(reqs: readonly AdmitRequest[]): (Decision | Promise<Decision> | SluiceRequestError)[] {
    const now = this.clock.now();
    return eachOrRefusal(reqs, (req) => this.admitOne(req, now));
  }

  /** Apply several reports in order, as one `report` after another; a bad one gets its error in its place. */
  reportMany(reps: readonly Report[]): (ReportAck | SluiceRequestError)[] {
    return eachOrRefusal(reps, (rep) => this.reportOne(rep));
  }

  private admitOne(req: AdmitRequest, now: number): Decision | Promise<Decision> {
    if (this.closed) throw unavailable("sluice is shutting down");
    this.expireDue(now);
    // Length-prefixed: no key and id can be made to read as another pair (a separator can appear in either).
    const idKey = req.id === undefined ? undefined : `${req.key.length}:${req.key}${req.id}`;
    if (idKey !== undefined) {
      const hit = this.recent.get(idKey);
      if (hit && hit.until > now) return hit.value instanceof PackedDecision ? hit.value.unpack() : hit.value;
    }
    const scopes = this.resolveScopes(req, true);
    const blocker = this.waiters.blocks(scopes);
    const attempt = blocker ? undefined : this.attempt(req, scopes, now);

    if (attempt?.admitted) {
      const value = this.deliver(req, attempt.decision, now);
      this.remember(idKey, value, now + this.leaseTtlMs, now);
      return value;
    }
    const mayWait =
      req.waitMs > 0 &&
      (attempt === undefined ||
        attempt.canFreeAnytime ||
        (attempt.exactRetryAfterMs !== undefined && attempt.exactRetryAfterMs <= req.waitMs));
    if (mayWait) {
      if (this.waiters.full) throw unavailable("too many admissions waiting");
      // Queue on the scopes that refused it, or that others queue on before it; its other scopes stay open to later callers.
      const queuedOn = attempt ? attempt.refused : this.waiters.queuedScopes(scopes);
      const last = attempt?.decision ?? this.queuedRefusal(blocker!, scopes, req.limits, now);
      const promise = new Promise<Decision>((resolve, reject) => {
        this.waiters.add({ req, scopes, queuedOn, deadline: now + req.waitMs, resolve, reject, last });
      });
      this.remember(idKey, promise, now + this.leaseTtlMs, now);
      // Wake at the deadline at the latest: a refusal that can free at any time (concurrency) may name a
      // retry time past it, and the caller must get its reject when its wait runs out, not be admitted later.
      const retryAt = attempt?.exactRetryAfterMs !== undefined ? now + attempt.exactRetryAfterMs : Number.POSITIVE_INFINITY;
      this.scheduleWake(Math.min(retryAt, now + req.waitMs));
      // The first caller to queue brings a lenient expiry timer forward.
      if (this.waiters.size === 1) this.armExpiry();
      return promise;
    }
    const decision = attempt?.decision ?? this.queuedRefusal(blocker!, scopes, req.limits, now);
    this.publish(req, decision, now);
    // A refusal is repeated for the same id only while it would be the same anyway.
    this.remember(idKey, decision, now + ((decision.decision === "reject" ? decision.retryAfterMs : undefined) ?? this.leaseTtlMs), now);
    return decision;
  }

  /** Apply a report once per lease; usage of unknown leases is still counted. */
  report(rep: Report): ReportAck {
    return this.reportOne(rep);
  }

  private reportOne(rep: Report): ReportAck {
    if (this.closed) throw unavailable("sluice is shutting down");
    const now = this.clock.now();
    this.expireDue(now);
    return this.applyPlan(this.planReport(rep, now), now);
  }

  /**
   * What `rep` would do, without doing it: its status and the usage it would add to
   * which scopes (as a journal entry). Throws `bad_request` for a report that cannot
   * be applied. Pure but for reading the current state.
   */
  planReport(rep: Report, now = this.clock.now()): ReportPlan {
    const rec = rep.lease !== undefined ? this.leases.get(rep.lease) : undefined;
    if (rec) {
      if ((rep.key !== undefined && rep.key !== rec.key) || (rep.model !== undefined && rep.model !== rec.model)) {
        throw badRequest("lease: belongs to another key or model");
      }
      const actual = this.actualOf(rep, rec.estimate);
      return { status: "applied", rep, rec, entry: entryOf(now, "applied", rec.scopes, actual, rec.key, rec.model, rec.id) };
    }
    const tomb = rep.lease !== undefined ? this.leases.tombstone(rep.lease) : undefined;
    if (tomb?.reported) return { status: "duplicate" };
    if (tomb) {
      const r = tomb.record;
      if ((rep.key !== undefined && rep.key !== r.key) || (rep.model !== undefined && rep.model !== r.model)) {
        throw badRequest("lease: belongs to another key or model");
      }
      const actual = this.actualOf(rep, r.estimate);
      const delta: Usage = { tokens: actual.tokens - r.estimate.tokens, cost: actual.cost - r.estimate.cost, requests: 0 };
      return { status: "late", rep, tomb, actual, entry: entryOf(now, "late", r.scopes, delta, r.key, r.model, r.id) };
    }
    if (rep.key === undefined || rep.model === undefined) {
      throw badRequest("lease: unknown or long expired; name key and model so that the usage is counted");
    }
    const usage: Usage = { tokens: rep.tokens ?? 0, cost: rep.cost ?? 0, requests: 1 };
    const scopes = this.resolveScopes({ key: rep.key, model: rep.model, scopes: {} });
    return { status: "orphan", rep, entry: entryOf(now, "orphan", scopes, usage, rep.key, rep.model, rep.lease) };
  }

  /** Apply a plan made by {@link planReport} (in a turn). */
  private applyPlan(plan: ReportPlan, now: number): ReportAck {
    const rep = plan.status === "duplicate" ? undefined : plan.rep;
    switch (plan.status) {
      case "duplicate":
        return { ok: true, status: "duplicate" };
      case "applied": {
        const rec = plan.rec;
        const actual = plan.entry.usage;
        this.settle(rec, { outcome: rep!.outcome, actual, retryAfterMs: rep!.retryAfterMs, latency: { ttftMs: rep!.ttftMs, itlMs: rep!.itlMs } }, now);
        this.leases.settle(rec, true, now + this.leaseTtlMs);
        this.emitReport(rep!, rec.key, rec.model, actual, "applied", now);
        this.processWaiters();
        return { ok: true, status: "applied" };
      }
      case "late": {
        const r = plan.tomb.record;
        for (const s of r.scopes) this.tell(s, { type: "use", usage: plan.entry.usage, now });
        this.leases.bury(r.id, { reported: true, record: r, until: now + this.leaseTtlMs });
        this.emitReport(rep!, r.key, r.model, plan.actual, "late", now);
        this.processWaiters();
        return { ok: true, status: "late" };
      }
      case "orphan": {
        const { scopes, usage, key, model, lease } = plan.entry;
        for (const s of scopes) this.tell(s, { type: "use", usage, now });
        if (lease !== undefined) {
          const record: LeaseRecord = { id: lease, key, model, scopes, heldMask: 0, probeMask: 0, estimate: usage, expiresAt: now };
          this.leases.bury(lease, { reported: true, record, until: now + this.leaseTtlMs });
        }
        this.emitReport(rep!, key, model, usage, "orphan", now);
        return { ok: true, status: "orphan" };
      }
    }
  }

  // ---- the durable path: journal, then apply ----

  /** Highest journal sequence applied in memory (restored entries included). */
  get appliedSeq(): number {
    return this.lastAppliedSeq;
  }

  /** Appends in flight (reports and expiries). */
  get pendingAppends(): number {
    return this.pending;
  }

  /** After a restore: everything up to `seq` is in memory. Duplicate acks at or below it are not applied again. */
  restoredUpTo(seq: number): void {
    this.lastAppliedSeq = Math.max(this.lastAppliedSeq, seq);
    this.restoredSeq = Math.max(this.restoredSeq, seq);
  }

  /** A replayed entry with a lease: remember it, so that a repeat of its report counts once (and a late one the difference). */
  restoreTombstone(e: LogEntry): void {
    if (e.type !== "use" || e.lease === undefined) return;
    const now = this.clock.now();
    const prior = this.leases.tombstone(e.lease);
    if (prior?.reported) return;
    const record: LeaseRecord = {
      id: e.lease, key: e.key, model: e.model, scopes: e.scopes, heldMask: 0, probeMask: 0,
      estimate: e.usage, expiresAt: e.ts,
    };
    this.leases.bury(e.lease, { reported: e.status !== "expired", record, until: now + this.leaseTtlMs });
  }

  /**
   * Reports on the durable path: each is planned, journaled, and applied once the journal
   * acknowledged it (in acknowledgement order, which is journal order); its answer comes then.
   * A repeat of an applied report is answered at once. Without a journal: as {@link reportMany}.
   */
  reportDurably(reps: readonly Report[]): (ReportAck | Promise<ReportAck> | SluiceRequestError)[] {
    if (!this.journal) return this.reportMany(reps);
    const now = this.clock.now();
    if (!this.closed) this.expireDueIn(now);
    return eachOrRefusal(reps, (rep) => this.reportDurablyOne(rep, now));
  }

  private reportDurablyOne(rep: Report, now: number): ReportAck | Promise<ReportAck> {
    if (this.closed) throw unavailable("sluice is shutting down");
    const busy = rep.lease !== undefined ? this.locked.get(rep.lease) : undefined;
    // Another report or the expiry of the same lease is being journaled: decide after it.
    if (busy) return busy.then(() => this.reportDurablyOne(rep, this.clock.now()));
    const plan = this.planReport(rep, now);
    if (plan.status === "duplicate") return { ok: true, status: "duplicate" };
    if (this.pending >= this.maxPendingAppends) throw unavailable("too many reports waiting for the journal");
    const journal = this.journal!;
    const msgID = entryMsgID(plan.entry);
    const lease = plan.entry.lease;
    this.pending++;
    let unlock: () => void = () => {};
    if (lease !== undefined) this.locked.set(lease, new Promise<void>((resolve) => (unlock = resolve)));
    // Runs in the same callback as the apply (or the failure), so that whatever comes next sees the outcome.
    const release = () => {
      if (lease !== undefined) {
        this.locked.delete(lease);
        unlock();
        if (this.deferred.delete(lease)) {
          // Its lease fell due while the report was being journaled; if the report failed, expire it now.
          const rec = this.leases.get(lease);
          if (rec && !this.closed) this.journalExpiry(rec);
        }
      }
      this.appendDone();
    };
    return journal.append(plan.entry, msgID).then(
      (ack) => {
        try {
          if (ack.duplicate) {
            // Stored before: by this process with its outcome unknown (then apply it now), or
            // before a restart (then it is in memory already, or its report was counted as it was).
            const mine = msgID !== undefined && this.uncertain.delete(msgID) && ack.seq > this.restoredSeq;
            if (!mine) return { ok: true as const, status: "duplicate" as const };
          } else if (ack.seq > this.lastAppliedSeq) this.lastAppliedSeq = ack.seq;
          return this.applyPlan(plan, this.clock.now());
        } finally {
          release();
        }
      },
      (err: unknown) => {
        if (msgID !== undefined) this.remember2(msgID);
        release();
        throw unavailable(`report not recorded: ${describe(err)}`);
      },
    );
  }

  /** An append (of `pending`) is over, stored or not. */
  private appendDone(): void {
    this.pending--;
    if (this.pending === 0) this.drained?.();
  }

  /** Resolves when no append is in flight. */
  settled(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const prev = this.drained;
      this.drained = () => {
        prev?.();
        resolve();
      };
    });
  }

  /** Journal the expiry of an unreported lease, then settle it at its estimate (the slot frees then). */
  private journalExpiry(rec: LeaseRecord): void {
    const journal = this.journal!;
    const entry = entryOf(this.clock.now(), "expired", rec.scopes, rec.estimate, rec.key, rec.model, rec.id);
    const msgID = entryMsgID(entry);
    this.pending++;
    let unlock: () => void = () => {};
    this.locked.set(rec.id, new Promise<void>((resolve) => (unlock = resolve)));
    const release = () => {
      this.locked.delete(rec.id);
      unlock();
      this.appendDone();
    };
    void journal.append(entry, msgID).then(
      (ack) => {
        try {
          if (!ack.duplicate && ack.seq > this.lastAppliedSeq) this.lastAppliedSeq = ack.seq;
          if (!this.leases.isLive(rec)) return;
          const now = this.clock.now();
          this.settle(rec, { outcome: "expired", actual: rec.estimate }, now);
          this.leases.settle(rec, false, now + this.leaseTtlMs);
          this.processWaiters();
        } finally {
          release();
        }
      },
      () => {
        // Not recorded: try again in a while (the lease keeps its slot until then).
        if (msgID !== undefined) this.remember2(msgID);
        release();
        if (this.closed) return;
        const h = this.clock.setTimeout(() => {
          this.retryTimers.delete(h);
          if (this.leases.isLive(rec) && !this.locked.has(rec.id) && !this.closed) this.journalExpiry(rec);
        }, EXPIRY_RETRY_MS);
        this.retryTimers.add(h);
      },
    );
  }

  /** An append whose outcome is unknown (it may be stored): a later duplicate ack for it is applied. */
  private remember2(msgID: string): void {
    this.uncertain.delete(msgID);
    this.uncertain.add(msgID);
    if (this.uncertain.size > DEFAULT_ADMISSIONS.maxRecent) {
      const oldest = this.uncertain.values().next().value;
      if (oldest !== undefined) this.uncertain.delete(oldest);
    }
  }

  /** An operator reset of one scope. */
  reset(scope: string, what: ResetWhat): void | Promise<void> {
    const now = this.clock.now();
    if (!this.journal) return this.applyReset(scope, what, now);
    // Journaled first, like usage: replay puts it between the same reports as it was applied.
    if (this.closed) throw unavailable("sluice is shutting down");
    if (this.pending >= this.maxPendingAppends) throw unavailable("too many entries waiting for the journal");
    const entry: ResetEntry = { v: 1, ts: now, type: "reset", scopes: [scope], what };
    this.pending++;
    return this.journal.append(entry, undefined).then(
      (ack) => {
        try {
          if (!ack.duplicate && ack.seq > this.lastAppliedSeq) this.lastAppliedSeq = ack.seq;
          // At the journaled time, as replay will.
          this.applyReset(scope, what, entry.ts);
        } finally {
          this.appendDone();
        }
      },
      (err: unknown) => {
        this.appendDone();
        throw unavailable(`reset not recorded: ${describe(err)}`);
      },
    );
  }

  private applyReset(scope: string, what: ResetWhat, now: number): void {
    // A passivated scope is woken to be reset; one never seen has nothing to reset.
    if (this.registry.peek(scope) || this.registry.isDormant(scope)) this.tell(scope, { type: "reset", what, now });
    this.processWaiters();
  }

  /** A new policy reached the registry: queued callers may fit now. */
  policyChanged(): void {
    this.processWaiters();
  }

  /** Settle every lease that expired by `now` at its estimate, freeing its slots. */
  expireDue(now = this.clock.now()): void {
    this.expireDueIn(now);
  }

  private expireDueIn(now: number): void {
    // Most calls find nothing due: skip the walk (and its generators) then. The timer is still
    // armed for the next expiry: when an admission got to the due leases first, the timer that
    // was set for them finds nothing, and must not leave the later ones without a timer.
    if (!this.leases.anyDue(now)) {
      this.armExpiry();
      return;
    }
    let any = false;
    for (const rec of this.leases.due(now)) {
      if (this.journal) {
        // Journaled first, settled on its ack; a lease whose report is being journaled is left to the report.
        if (this.locked.has(rec.id)) this.deferred.add(rec.id);
        else this.journalExpiry(rec);
        continue;
      }
      any = true;
      this.settle(rec, { outcome: "expired", actual: rec.estimate }, now);
      this.leases.settle(rec, false, now + this.leaseTtlMs);
    }
    this.leases.pruneTombstones(now);
    if (any) this.processWaiters();
    this.armExpiry();
  }

  /** Answer every waiting caller `unavailable` (no decision was made for them) and stop every timer. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.inOrder()) {
      this.waiters.remove(w);
      w.reject(unavailable("sluice is shutting down; retry against another instance or later"));
    }
    if (this.wakeTimer !== undefined) this.clock.clearTimeout(this.wakeTimer);
    if (this.expiryTimer !== undefined) this.clock.clearTimeout(this.expiryTimer);
    for (const h of this.retryTimers) this.clock.clearTimeout(h);
    this.retryTimers.clear();
    // Held replies go out now rather than never, carrying the part of the delay not yet served.
    const now = this.clock.now();
    for (const [h, release] of this.holds) {
      this.clock.clearTimeout(h);
      release(now);
    }
    this.holds.clear();
    this.decisions.complete();
    this.reports.complete();
  }

  // ---- internals ----

  /**
   * A full concurrency scope frees a slot when a lease is reported (usually soon)
   * or expires (at the latest): the caller is told the earlier of the first expiry
   * and {@link CONCURRENCY_RETRY_HINT_MS}. Callers that must not poll use `waitMs`.
   */
  private hintsFor(scope: string, ctx: ScopeContext, now: number): ScopeHints {
    const limit = scopeSlotLimit(ctx);
    if (limit === undefined || ctx.held < limit) return NO_HINTS;
    const exp = this.leases.earliestHeldExpiry(scope);
    const untilExpiry = exp === undefined ? this.leaseTtlMs : Math.max(1, exp - now);
    return { concurrencyWaitMs: Math.min(untilExpiry, CONCURRENCY_RETRY_HINT_MS) };
  }

  /**
   * The context of `scope` now, its actor created (or revived) if it has none. It is the
   * actor's own, written in place by its next event: read it, don't keep it.
   */
  private ctxOf(scope: string): ScopeContext {
    return this.actorFor(scope).getSnapshot().context;
  }

  /** Send `event` to the actor of `scope` (created or revived if need be); its context after the event. */
  private tell(scope: string, event: ScopeEvent): ScopeContext {
    return this.tellActor(this.actorFor(scope), scope, event);
  }

  /** {@link tell}, to the actor already found for `scope`. */
  private tellActor(actor: ScopeActor, scope: string, event: ScopeEvent): ScopeContext {
    actor.send(event);
    this.changed?.(scope);
    return actor.getSnapshot().context;
  }

  private actorFor(scope: string): ScopeActor {
    const a = this.registry.peek(scope);
    if (a) return a;
    // Reviving a passivated scope adds nothing; only a new one counts against the bound (checked
    // for a whole admission in resolveScopes, so this is the backstop for other paths).
    if (this.registry.full && !this.registry.isDormant(scope) && limitsHoldState(this.registry.limitsFor(scope))) {
      throw unavailable("too many scopes (live and passivated)");
    }
    return this.registry.get(scope);
  }

  /**
   * `key:…`, `model:…`, the named scopes, and every parent the policy declares, each once.
   * For an admission (`admission`), also refuses `unavailable` what would grow memory past
   * its bounds: scopes to bring to life past `maxLive`, and, while memory is short, any
   * scope to bring to life or id to remember.
   */
  resolveScopes(req: Pick<AdmitRequest, "key" | "model" | "scopes"> & { id?: string }, admission = false): string[] {
    const out = [`key:${req.key}`, `model:${req.model}`];
    for (const kind in req.scopes) out.push(`${kind}:${req.scopes[kind]}`);
    const max = DEFAULT_ADMISSIONS.maxScopesPerAdmission;
    // Scopes that would get a new actor (not live, not passivated), and those that would come to life (new or woken).
    let fresh = 0;
    let waking = 0;
    for (let i = 0; i < out.length; i++) {
      // Read the limits without creating an actor: a request refused for room must leave nothing behind.
      const live = this.registry.context(out[i]!);
      const limits = live ? live.limits : this.registry.limitsFor(out[i]!);
      // The scope's own name string: a lease keeps its scopes for its lifetime, so share, don't copy.
      if (live) out[i] = live.scope;
      else {
        waking++;
        // A scope without limits is not counted against maxScopes: it never sleeps with state (it is
        // always dropped when idle), so it cannot fill the registry, and a full registry (after a
        // restart, say) must not refuse every call to a model that has no limits of its own.
        if (!this.registry.isDormant(out[i]!) && limitsHoldState(limits)) fresh++;
      }
      const parents = limits.parents;
      if (!parents) continue;
      for (const kind in parents) {
        const s = `${kind}:${parents[kind]}`;
        if (!out.includes(s)) {
          if (out.length >= max) throw badRequest(`scopes: more than ${max} scopes with parents`);
          out.push(s);
        }
      }
    }
    // All the new scopes fit under the bound, or none is created.
    if (fresh > 0 && !this.registry.hasRoomFor(fresh)) throw unavailable("too many scopes (live and passivated)");
    if (admission && waking > 0 && !this.registry.hasLiveRoomFor(waking)) throw unavailable("too many live scopes: new keys come faster than idle ones are passivated; retry shortly");
    if (admission && (waking > 0 || req.id !== undefined) && this.memoryShort?.()) {
      throw unavailable("memory is short: admissions that need a new scope or name an id are refused until it frees; retry shortly");
    }
    // A lease keeps this list for its lifetime: grown by push, its store has room for ~20; a copy is exact.
    return out.length > 2 ? out.slice() : out;
  }

  private attempt(req: AdmitRequest, scopes: string[], now: number): Attempt {
    const demand: Demand = { tokens: req.tokens, cost: req.cost, waitMs: req.waitMs };
    const actors: ScopeActor[] = new Array(scopes.length);
    const contexts: ScopeContext[] = new Array(scopes.length);
    const verdicts: ScopeVerdict[] = new Array(scopes.length);
    let count = 0;
    for (let i = 0; i < scopes.length; i++) {
      const c = (contexts[i] = (actors[i] = this.actorFor(scopes[i]!)).getSnapshot().context);
      count += (verdicts[i] = scopeCheck(c, demand, now, this.hintsFor(scopes[i]!, c, now))).limits.length;
    }
    const limits = tightestFirst(verdicts, count, req.limits);

    let worst = -1;
    let worstWait: number | undefined;
    let refused: string[] | undefined;
    for (let i = 0; i < verdicts.length; i++) {
      const v = verdicts[i]!;
      if (v.ok) continue;
      (refused ??= []).push(scopes[i]!);
      const wait = v.retryAfterMs;
      // A refusal that can never turn (no retry time) outranks all; else the longest wait.
      if (worst < 0 || (worstWait !== undefined && (wait === undefined || wait > worstWait))) {
        worst = i;
        worstWait = wait;
      }
    }
    if (worst >= 0) {
      const v = verdicts[worst] as Extract<ScopeVerdict, { ok: false }>;
      const decision: Extract<Decision, { decision: "reject" }> = { decision: "reject", reason: v.reason, scope: scopes[worst]!, limits };
      if (worstWait !== undefined) decision.retryAfterMs = this.jitter(worstWait);
      if (v.fallback !== undefined) decision.fallback = v.fallback;
      const halfOpen = contexts[worst]!.breaker?.state === "halfOpen";
      return {
        admitted: false,
        decision,
        exactRetryAfterMs: worstWait,
        canFreeAnytime: v.reason === "concurrency" || (v.reason === "circuit_open" && halfOpen),
        refused: refused!,
      };
    }

    if (this.leases.size >= this.maxLeases) throw unavailable("too many live leases");
    // The scopes it holds a slot in, and those it is a probe of, as bits by scope index (at most 32 scopes).
    let heldMask = 0;
    let probeMask = 0;
    let delayMs = 0;
    for (let i = 0; i < scopes.length; i++) {
      const holds = scopeHoldsSlots(contexts[i]!.limits);
      if (holds) heldMask |= 1 << i;
      const after = this.tellActor(actors[i]!, scopes[i]!, { type: "admit", demand, held: holds, now });
      if (after.breaker?.state === "halfOpen") probeMask |= 1 << i;
      const v = verdicts[i] as Extract<ScopeVerdict, { ok: true }>;
      if (v.delayMs > delayMs) delayMs = v.delayMs;
    }
    const id = this.leases.add(scopes, heldMask, probeMask, req.tokens, req.cost, now + this.leaseTtlMs);
    this.armExpiry();
    return { admitted: true, decision: { decision: "admit", reason: "ok", lease: id, delayMs, limits } };
  }

  /** An admitted decision: published now; with `waitMs`, sluice holds the reply through the pacing delay. */
  private deliver(req: AdmitRequest, d: Extract<Decision, { decision: "admit" }>, now: number): Decision | Promise<Decision> {
    const hold = req.waitMs > 0 ? Math.min(d.delayMs, req.waitMs) : 0;
    const decision = hold > 0 ? { ...d, delayMs: d.delayMs - hold } : d;
    this.publish(req, decision, now);
    if (hold <= 0) return decision;
    const until = now + hold;
    return new Promise<Decision>((resolve) => {
      const h = this.clock.setTimeout(() => {
        this.holds.delete(h);
        resolve(decision);
      }, hold);
      this.holds.set(h, (at) => resolve({ ...decision, delayMs: decision.delayMs + Math.max(0, Math.ceil(until - at)) }));
    });
  }

  /**
   * The refusal of a caller (on `scopes`) that may not jump the queue of `blocker`. It names the scope the
   * two share, never one of the earlier caller's own: that caller may be another tenant (its key), and its
   * refusal may come from a scope this caller does not count against at all.
   */
  private queuedRefusal(blocker: Waiter, scopes: readonly string[], mode: LimitsMode | undefined, now: number): Extract<Decision, { decision: "reject" }> {
    const scope = scopes.find((s) => blocker.queuedOn.includes(s)) ?? scopes[0]!;
    const last = blocker.last?.decision === "reject" ? blocker.last : undefined;
    // The earlier caller's limits, tightest first, as far as they are this caller's, and as many as it asked for.
    const mine = last ? last.limits.filter((l) => scopes.includes(l.scope)) : [];
    const limits = mode === "none" ? [] : mode === "tightest" ? mine.slice(0, 1) : mine;
    if (last && last.scope === scope) return { ...last, limits };
    const demand: Demand = { tokens: blocker.req.tokens, cost: blocker.req.cost, waitMs: blocker.req.waitMs };
    const v = scopeCheck(this.ctxOf(scope), demand, now);
    const retryAfterMs = last?.retryAfterMs ?? this.jitter(Math.max(1, blocker.deadline - now));
    return { decision: "reject", reason: v.ok ? "rate_limited" : v.reason, scope, retryAfterMs, limits };
  }

  /** Try waiting callers in arrival order; a caller is tried only when no earlier one waits on its scopes. */
  private processWaiters(): void {
    if (this.processing || this.waiters.size === 0) return;
    this.processing = true;
    try {
      const now = this.clock.now();
      const blocked = new Set<string>();
      let wake = Number.POSITIVE_INFINITY;
      for (const w of this.waiters.inOrder()) {
        const isBlocked = w.scopes.some((s) => blocked.has(s));
        if (!isBlocked) {
          const a = this.attempt(w.req, w.scopes, now);
          if (a.admitted) {
            this.waiters.remove(w);
            const remaining = Math.max(0, w.deadline - now);
            const value = this.deliver({ ...w.req, waitMs: remaining }, a.decision, now);
            void Promise.resolve(value).then(w.resolve);
            continue;
          }
          w.last = a.decision;
          this.waiters.requeue(w, a.refused);
          const hopeless = !a.canFreeAnytime && (a.exactRetryAfterMs === undefined || now + a.exactRetryAfterMs > w.deadline);
          if (hopeless || w.deadline <= now) {
            this.waiters.remove(w);
            this.publish(w.req, a.decision, now);
            w.resolve(a.decision);
            continue;
          }
          if (a.exactRetryAfterMs !== undefined && !a.canFreeAnytime) wake = Math.min(wake, now + Math.max(1, a.exactRetryAfterMs));
        } else if (w.deadline <= now) {
          this.waiters.remove(w);
          const d = w.last ?? this.queuedRefusal(w, w.scopes, w.req.limits, now);
          this.publish(w.req, d, now);
          w.resolve(d);
          continue;
        } else {
          this.waiters.requeue(w, w.scopes.filter((s) => blocked.has(s)));
        }
        // Only the scopes it waits on are closed to later callers (FIFO per scope), not all it names:
        // a caller waiting for its own key's bucket must not hold back every other key of the same model.
        for (const s of w.queuedOn) blocked.add(s);
        wake = Math.min(wake, w.deadline);
      }
      if (Number.isFinite(wake)) this.scheduleWake(wake);
    } finally {
      this.processing = false;
    }
  }

  private scheduleWake(at: number): void {
    if (at >= this.wakeAt && this.wakeTimer !== undefined) return;
    if (this.wakeTimer !== undefined) this.clock.clearTimeout(this.wakeTimer);
    this.wakeAt = at;
    this.wakeTimer = this.clock.setTimeout(() => {
      this.wakeTimer = undefined;
      this.wakeAt = Number.POSITIVE_INFINITY;
      this.expireDue();
      this.processWaiters();
    }, Math.max(0, at - this.clock.now()));
  }

  private armExpiry(): void {
    const next = this.leases.nextExpiry();
    if (next === undefined || this.closed) return;
    // Callers queued for a slot are served at the expiry itself.
    const at = next + (this.waiters.size > 0 ? 0 : this.expirySlackMs);
    if (this.expiryTimer !== undefined && this.expiryAt <= at) return;
    if (this.expiryTimer !== undefined) this.clock.clearTimeout(this.expiryTimer);
    this.expiryAt = at;
    this.expiryTimer = this.clock.setTimeout(() => {
      this.expiryTimer = undefined;
      this.expiryAt = Number.POSITIVE_INFINITY;
      this.expireDue();
    }, Math.max(0, at - this.clock.now()));
  }

  private settle(rec: LeaseRecord, r: { outcome: Outcome | "expired"; actual: Usage; retryAfterMs?: number; latency?: Settlement["latency"] }, now: number): void {
    // One settlement object per (held, probe) pair, shared by the scopes alike (events are never mutated);
    // nearly every lease is no probe, so its scopes need two at most.
    let heldOne: Settlement | undefined;
    let freeOne: Settlement | undefined;
    const scopes = rec.scopes;
    for (let i = 0; i < scopes.length; i++) {
      const s = scopes[i]!;
      const held = hasBit(rec.heldMask, i);
      const probe = rec.probeMask !== 0 && hasBit(rec.probeMask, i);
      const settlement: Settlement = probe
        ? settlementOf(rec, r, held, true)
        : held
          ? (heldOne ??= settlementOf(rec, r, true, false))
          : (freeOne ??= settlementOf(rec, r, false, false));
      // Most scopes of a lease (a key with only a request rate, say) have nothing to settle: skip the event.
      const actor = this.actorFor(s);
      if (settlementMatters(actor.getSnapshot().context, settlement)) this.tellActor(actor, s, { type: "settle", settlement, now });
    }
  }

  private actualOf(rep: Report, estimate: Usage): Usage {
    return { tokens: rep.tokens ?? estimate.tokens, cost: rep.cost ?? estimate.cost, requests: 1 };
  }

  private emitReport(rep: Report, key: string, model: string, u: Usage, status: ReportAck["status"], now: number): void {
    if (!this.reports.observed) return;
    this.reports.next({
      at: now, key, model, outcome: rep.outcome, tokens: u.tokens, cost: u.cost,
      ttftMs: rep.ttftMs, itlMs: rep.itlMs, latencyMs: rep.latencyMs, status,
    });
  }

  private publish(req: AdmitRequest, d: Decision, now: number): void {
    if (!this.decisions.observed) return;
    const ev: DecisionEvent = {
      ts: now, key: req.key, model: req.model, scopes: req.scopes, tokens: req.tokens, cost: req.cost,
      decision: d.decision, reason: d.reason,
    };
    if (d.decision === "admit") {
      ev.lease = d.lease;
      ev.delayMs = d.delayMs;
    } else {
      ev.scope = d.scope;
      if (d.retryAfterMs !== undefined) ev.retryAfterMs = d.retryAfterMs;
      if (d.fallback !== undefined) ev.fallback = d.fallback;
    }
    this.decisions.next(ev);
  }

  private remember(idKey: string | undefined, value: Decision | Promise<Decision>, until: number, now: number): void {
    if (idKey === undefined) return;
    if (value instanceof Promise) {
      const entry: Remembered = { until, value };
      this.recent.set(idKey, entry);
      // Once decided, keep the decision packed (a refusal of the wait, e.g. shutting down, stays as it is).
      value.then(
        (d) => {
          if (this.recent.get(idKey) === entry) entry.value = PackedDecision.pack(d);
        },
        () => undefined,
      );
    } else {
      this.recent.set(idKey, { until, value: PackedDecision.pack(value) });
    }
    this.recentOrder.push(idKey, until);
    // Remembered in nearly time order: drop expired ones from the front, and the oldest past the cap.
    const drop = (k: string, at: number) => {
      const r = this.recent.get(k);
      if (r && r.until <= at) this.recent.delete(k);
    };
    for (const k of this.recentOrder.popDue(now)) drop(k, now);
    while (this.recent.size > this.maxRecent) {
      const k = this.recentOrder.shift();
      if (k === undefined) break;
      drop(k, Number.POSITIVE_INFINITY);
    }
  }

  private jitter(ms: number): number {
    const j = this.policy.jitter ?? DEFAULT_JITTER;
    return Math.ceil(ms * (j.min + this.random() * (j.max - j.min)));
  }
}

/**
 * `fn` of each item, or the error it threw in its place. An unexpected error (a bug) is
 * answered `internal` with it as the cause, for that item alone: the items before it were
 * decided and must get their decisions, and the ones after it still get theirs.
 */
function eachOrRefusal<T, R>(items: readonly T[], fn: (item: T) => R): (R | SluiceRequestError)[] {
  return items.map((item) => {
    try {
      return fn(item);
    } catch (e) {
      return e instanceof SluiceRequestError ? e : new SluiceRequestError("internal", "internal error", { cause: e });
    }
  });
}

function settlementOf(
  rec: LeaseRecord,
  r: { outcome: Outcome | "expired"; actual: Usage; retryAfterMs?: number; latency?: Settlement["latency"] },
  held: boolean,
  probe: boolean,
): Settlement {
  return { estimate: rec.estimate, actual: r.actual, outcome: r.outcome, retryAfterMs: r.retryAfterMs, held, probe, latency: r.latency };
}

function entryOf(ts: number, status: JournalEntry["status"], scopes: readonly string[], usage: Usage, key: string, model: string, lease: string | undefined): JournalEntry {
  const e: JournalEntry = { v: 1, ts, type: "use", scopes, usage, status, key, model };
  if (lease !== undefined) e.lease = lease;
  return e;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Share of a limit still free (0 for a limit of 0). */
function freeShare(l: LimitInfo): number {
  return l.limit > 0 ? l.remaining / l.limit : 0;
}

/**
 * Every scope's `limits`, the tightest first (ties in scope order), in one array of `count`;
 * with `mode` `tightest` only the first of them, with `none` none.
 * An insertion sort: a decision has a handful of entries, and `Array.prototype.sort`
 * allocates work space on every call (7% of all bytes allocated per admission in a sampling heap profile of corework).
 */
function tightestFirst(verdicts: readonly ScopeVerdict[], count: number, mode: LimitsMode = "all"): LimitInfo[] {
  if (mode === "none") return [];
  if (mode === "tightest") {
    let tightest: LimitInfo | undefined;
    let least = 0;
    for (const v of verdicts) {
      for (const l of v.limits) {
        const share = freeShare(l);
        if (tightest === undefined || share < least) {
          tightest = l;
          least = share;
        }
      }
    }
    return tightest === undefined ? [] : [tightest];
  }
  const out: LimitInfo[] = new Array(count);
  let n = 0;
  for (const v of verdicts) {
    for (const l of v.limits) {
      const share = freeShare(l);
      let j = n++;
      while (j > 0 && freeShare(out[j - 1]!) > share) {
        out[j] = out[j - 1]!;
        j--;
      }
      out[j] = l;
    }
  }
  return out;
}
