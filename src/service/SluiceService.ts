/**
 * sluice on NATS: every endpoint is an RxJS pipeline — message → decode →
 * validate → scope actors → decision → reply — and every decision and scope
 * state change is published as an event.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { type Service, type ServiceMsg, Svcm } from "@nats-io/services";
import { type MonoTypeOperatorFunction, type SchedulerLike, type Subscription, asyncScheduler, identity, map, tap } from "rxjs";
import type { InspectionEvent } from "xstate";
import { createHash } from "node:crypto";
import { type PolicyDocument, parseScope } from "../../machines/policy.js";
import { latencyOver, type ScopeNotice } from "../../machines/scope.js";
import { type AppliedReport, Admissions } from "../admission/Admissions.js";
import { type Clock, systemClock } from "../clock.js";
import { DEFAULT_CONFIG } from "../config.js";
import { type Logger, silentLogger } from "../log.js";
import { latencyAverages } from "../pipelines/latencyAverages.js";
import { bufferTurn } from "../pipelines/bufferTurn.js";
import { oneTaskEach } from "../pipelines/oneTaskEach.js";
import { fromEndpoint } from "../pipelines/fromEndpoint.js";
import type { Decision, DecisionEvent } from "../protocol/decision.js";
import { SluiceRequestError, badRequest, isSluiceRequestError, unavailable } from "../protocol/errors.js";
import { parsePolicy } from "../protocol/policySchema.js";
import {
  MAX_BATCH,
  type AdmitRequest,
  parseAdmitRequest,
  safeParseAdmitRequest,
  describeZodError,
  inspectRequestSchema,
  parseOrThrow,
  reportSchema,
  resetRequestSchema,
} from "../protocol/schemas.js";
import { encodeSubjectToken } from "../protocol/subjectToken.js";
import { StateWakes } from "../registry/StateWakes.js";
import { Passivator } from "../registry/Passivator.js";
import { ScopeRegistry } from "../registry/ScopeRegistry.js";
import { Persistence, type PersistenceOptions } from "../persistence/Persistence.js";
import { FramePublisher } from "../transport/FramePublisher.js";
import { HeapWatch } from "./HeapWatch.js";
import { clipErrorMessage, decodeBody, publishEvent, replyError, replyJson } from "../transport/messages.js";
import { inspectScope } from "./inspectView.js";

/** Version reported by NATS micro discovery. */
export const SLUICE_VERSION = "0.1.0";

/**
 * Slack of the lease expiry timer, ms (AdmissionsOptions.expirySlackMs): under load,
 * expiries are settled by the admissions arriving meanwhile, in their turns, rather than
 * in a timer turn of their own about every millisecond. Decisions never see an expired
 * lease; `inspect` expires what is due before it answers.
 */
const EXPIRY_SLACK_MS = 25;

export interface SluiceServiceOptions {
  nc: NatsConnection;
  policy: PolicyDocument;
  /** Subject prefix. Default `sluice`. */
  prefix?: string;
  clock?: Clock;
  /** Scheduler for the averages' decay ticks; must read the same time as `clock`. */
  scheduler?: SchedulerLike;
  logger?: Logger;
  /** Jitter source. Default Math.random. */
  random?: () => number;
  /** XState inspection observer for every scope actor. */
  inspect?: (event: InspectionEvent) => void;
  /** Watches decisions, reports and reply times (metrics, dashboards). Default: none. */
  observer?: ServiceObserver;
  maxAdmitBytes?: number;
  maxBodyBytes?: number;
  maxWaiters?: number;
  maxScopes?: number;
  /** Most live scope actors; see `ScopeRegistryOptions.maxLive`. */
  maxLiveScopes?: number;
  /**
   * Is the process short of memory? While it is, admissions that would bring a scope to
   * life or remember an id are refused `unavailable`. Default: a {@link HeapWatch} of this process.
   */
  memoryShort?: () => boolean;
  /**
   * Durable state: journal reports and expiries in JetStream before applying them,
   * snapshot changed scopes to KV, restore both at start. Default: off (memory only).
   */
  persistence?: PersistenceOptions;
  /** Passivate scopes idle this long, ms. Default 10 minutes. */
  idleMs?: number;
  /** Where decision events go instead of `nc` (e.g. a `DecisionEventThread`), given each one's subject. Default: published on `nc`. */
  decisionEvents?: { publish(subject: string, ev: DecisionEvent): void };
}

/** Fingerprint of a policy document: a runtime policy is kept across restarts only while the start policy has this one. */
function policyFingerprint(doc: PolicyDocument): string {
  return createHash("sha256").update(JSON.stringify(doc)).digest("hex");
}

/**
 * What the service tells an observer (metrics, dashboards). Every method is
 * optional and is called synchronously on the decision path, so it must be
 * cheap; whatever it throws is logged and dropped, never seen by a caller.
 */
export interface ServiceObserver {
  /** Every decision, as published on `<p>.decisions.…` (idempotent repeats are not decisions). */
  decision?(ev: DecisionEvent): void;
  /** Every report applied (repeats are not). */
  report?(r: AppliedReport): void;
  /**
   * A reply of `admit` or `admit-batch` went out `seconds` after its message was
   * received (from the socket read that brought it). `queued`: the reply waited in
   * sluice, in the queue (`waitMs`) or for a pacing slot.
   */
  replied?(endpoint: "admit" | "admit-batch", seconds: number, queued: boolean): void;
}

/** A running sluice service. */
export class SluiceService {
  readonly registry: ScopeRegistry;
  readonly admissions: Admissions;
  readonly prefix: string;
  private readonly nc: NatsConnection;
  /** The service's clock: the time its decisions are made at. */
  readonly clock: Clock;
  private readonly logger: Logger;
  /** Replies and events of a turn go out in one write. */
  private readonly out: FramePublisher;
  private readonly subs: Subscription[] = [];
  private readonly modelTokens = new Map<string, string>();
  private readonly warned = new Set<string>();
  private readonly errorCounts = new Map<string, Map<string, number>>();
  private service?: Service;
  private started = false;
  private stopping = false;
  private inFlight = 0;
  /** A settling of due leases is queued for after this turn. */
  private expiryQueued = false;
  private idle?: () => void;
  /** Durable state, when enabled. */
  readonly persistence?: Persistence;
  private readonly passivator: Passivator;
  /** Ticks scopes when an open breaker's cooldown or an exhausted budget's period ends, so their events go out then. */
  readonly stateWakes: StateWakes;
  /** Watches the heap, unless the options say how memory is judged. */
  private readonly heapWatch?: HeapWatch;
  /** Is memory short: the options' judge, or the heap watch's. */
  private readonly isMemoryShort: () => boolean;
  /** Fingerprint of the policy sluice was started with (see {@link restorePolicy}). */
  private readonly policyBase: string;
  /** Stores of runtime policies, one after another (so the last stored is the one in force). */
  private policyWrites: Promise<unknown> = Promise.resolve();

  private constructor(private readonly opts: SluiceServiceOptions, persistence?: Persistence) {
    this.persistence = persistence;
    this.policyBase = policyFingerprint(opts.policy);
    this.nc = opts.nc;
    this.prefix = opts.prefix ?? DEFAULT_CONFIG.prefix;
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger ?? silentLogger;
    this.out = FramePublisher.of(this.nc, this.logger);
    this.registry = new ScopeRegistry({
      policy: opts.policy,
      clock: this.clock,
      inspect: opts.inspect,
      maxScopes: opts.maxScopes,
      maxLive: opts.maxLiveScopes,
      onNotice: (scope, n) => this.publishNotice(scope, n),
    });
    if (opts.memoryShort) this.isMemoryShort = opts.memoryShort;
    else {
      const heapWatch = (this.heapWatch = new HeapWatch({ logger: this.logger }));
      this.isMemoryShort = () => heapWatch.short;
    }
    this.admissions = new Admissions({
      memoryShort: this.isMemoryShort,
      registry: this.registry,
      clock: this.clock,
      random: opts.random,
      maxWaiters: opts.maxWaiters,
      journal: persistence?.journal,
      maxPendingAppends: persistence?.maxPendingAppends,
      changed: persistence?.markDirty,
      expirySlackMs: EXPIRY_SLACK_MS,
    });
    this.stateWakes = new StateWakes({ registry: this.registry, clock: this.clock, logger: this.logger, changed: persistence?.markDirty });
    this.passivator = new Passivator({
      registry: this.registry,
      clock: this.clock,
      logger: this.logger,
      idleMs: opts.idleMs,
      busy: (s) => this.admissions.hasWaitersOn(s),
    });
  }

  /** The micro service id this instance answers discovery with; undefined until it serves. */
  get serviceId(): string | undefined {
    return this.service?.info().id;
  }

  /** Start the endpoints and pipelines; resolves once NATS has the subscriptions. */
  static async start(opts: SluiceServiceOptions): Promise<SluiceService> {
    const persistence = opts.persistence
      ? await Persistence.open(opts.nc, opts.prefix ?? DEFAULT_CONFIG.prefix, opts.persistence, opts.logger ?? silentLogger)
      : undefined;
    const s = new SluiceService(opts, persistence);
    await s.begin();
    return s;
  }

  private async begin(): Promise<void> {
    const p = this.prefix;
    // State first: nothing is served before the snapshots and the journal are back in memory.
    if (this.persistence) {
      await this.persistence.restore(this.registry, this.admissions, this.clock.now(), (scope, ctx) => this.stateWakes.watch(scope, ctx));
      await this.restorePolicy(this.persistence);
    }
    const svc = await new Svcm(this.nc).add({
      name: "sluice",
      version: SLUICE_VERSION,
      description: "admission control for rate-limited upstream APIs",
      queue: "sluice",
      // The micro library counts only thrown errors; ours are replies, so they are counted here, by code.
      statsHandler: (ep) => Promise.resolve({ errors: Object.fromEntries(this.errorCounts.get(ep.subject) ?? []) }),
    });
    this.service = svc;
    const maxAdmit = this.opts.maxAdmitBytes ?? DEFAULT_CONFIG.maxAdmitBytes;
    const maxBody = this.opts.maxBodyBytes ?? DEFAULT_CONFIG.maxBodyBytes;

    this.serveMany(svc, "admit", `${p}.admit`, (msg) => parseAdmitRequest(decodeBody(replyable(msg), maxAdmit)), (reqs) =>
      this.admissions.admitMany(reqs),
    );
    // A batch is decided and its reply written before the next batch of the same read is begun (oneTaskEach).
    this.serve(svc, "admit-batch", `${p}.admit.batch`, (msg) => this.admitBatch(decodeBody(replyable(msg), maxBody)), oneTaskEach());
    this.serveMany(svc, "report", `${p}.report`, (msg) => parseOrThrow(reportSchema, decodeBody(msg, maxAdmit)), (reps) =>
      this.admissions.reportDurably(reps),
    );
    this.serve(svc, "inspect", `${p}.inspect`, (msg) => this.inspect(decodeBody(msg, maxAdmit)));
    this.serve(svc, "policy-get", `${p}.admin.policy.get`, () => this.registry.policy);
    this.serve(svc, "policy-set", `${p}.admin.policy.set`, (msg) => {
      const doc = parsePolicy(decodeBody(msg, maxBody));
      const persistence = this.persistence;
      if (!persistence) {
        this.applyPolicy(doc);
        return { ok: true };
      }
      // Stored before it is applied, one after another: `ok` means it survives a restart, and
      // the policy in force is always the one stored last.
      const stored = { doc, setAt: this.clock.now(), base: this.policyBase };
      const write = this.policyWrites.then(() => persistence.snapshots.writePolicy(stored));
      this.policyWrites = write.catch(() => undefined);
      return write.then(
        () => {
          this.applyPolicy(doc);
          return { ok: true };
        },
        (err: unknown) => {
          this.logger.warn({ err }, "policy not stored; the policy in force is unchanged");
          throw unavailable(`policy not stored (${err instanceof Error ? err.message : String(err)}); the policy in force is unchanged`);
        },
      );
    });
    this.serve(svc, "reset", `${p}.admin.reset`, (msg) => {
      const r = parseOrThrow(resetRequestSchema, decodeBody(msg, maxAdmit));
      const done = () => {
        this.logger.info({ scope: r.scope, what: r.what }, "scope reset");
        return { ok: true };
      };
      // With persistence: answered once journaled and applied.
      const applied = this.admissions.reset(r.scope, r.what);
      return applied instanceof Promise ? applied.then(done) : done();
    });

    this.subs.push(this.admissions.decisions.subscribe((ev) => this.publishDecision(ev)));
    const observer = this.opts.observer;
    if (observer?.decision) this.subs.push(this.admissions.decisions.subscribe((ev) => this.tell(() => observer.decision!.call(observer, ev))));
    if (observer?.report) this.subs.push(this.admissions.reports.subscribe((r) => this.tell(() => observer.report!.call(observer, r))));
    this.subs.push(
      latencyAverages(
        this.admissions.reports,
        (model) => this.registry.context(`model:${model}`)?.limits.latency?.tauMs,
        this.opts.scheduler ?? asyncScheduler,
      ).subscribe((u) => {
        const actor = this.registry.peek(`model:${u.model}`);
        if (!actor) return;
        const now = this.clock.now();
        actor.send({ type: "latency", ttft: u.ttft, itl: u.itl, now });
        this.persistence?.markDirty(`model:${u.model}`);
        this.warnNearThreshold(u.model, now);
      }),
    );
    await this.nc.flush();
    this.persistence?.start(this.registry, this.admissions, this.clock);
    this.passivator.start();
    this.heapWatch?.start();
    this.started = true;
    this.logger.info({ prefix: p }, "sluice is serving");
  }

  /** Is memory short (see {@link HeapWatch})? While it is, admissions that would grow state are refused. */
  get memoryShort(): boolean {
    return this.isMemoryShort();
  }

  /** Whether the endpoints are up and answering: started, and not stopping. */
  get serving(): boolean {
    return this.started && !this.stopping;
  }

  /** Run an observer callback; an observer's failure must never reach the decision path. */
  private tell(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logger.warn({ err }, "service observer failed");
    }
  }

  /**
   * One endpoint as a pipeline: each message is handled synchronously where it
   * can be (a decision is a value, not a promise), replies in arrival order, and
   * nothing a client sends can end the stream. `pace` may reschedule the messages
   * (in order) before they are handled.
   */
  private serve(
    svc: Service,
    name: string,
    subject: string,
    handle: (msg: ServiceMsg) => unknown,
    pace: MonoTypeOperatorFunction<Received> = identity,
  ): void {
    const replied = this.repliedHook(name);
    const sub = fromEndpoint(svc, name, subject)
      .pipe(
        // Received before any pacing: the decision time counts the wait.
        map((msg): Received => ({ msg, at: replied ? performance.now() : 0 })),
        pace,
        map(({ msg, at }) => {
          if (this.stopping) return { msg, at, result: undefined, error: unavailable("sluice is shutting down") };
          try {
            return { msg, at, result: handle(msg), error: undefined };
          } catch (error) {
            return { msg, at, result: undefined, error };
          }
        }),
      )
      .subscribe({
        next: ({ msg, at, result, error }) => {
          // Nothing may escape to the subscription: a throw there would end the endpoint (and the process).
          try {
            if (error !== undefined) this.fail(subject, msg, error);
            else this.answer(subject, msg, result, replied && ((queued) => replied(at, queued)));
          } catch (err) {
            this.logger.error({ err, subject }, "answering a request failed");
          }
          this.expireAfterTurn();
        },
        error: (err) => this.logger.error({ err, endpoint: name }, "endpoint subscription failed"),
      });
    this.subs.push(sub);
  }

  /**
   * A hot endpoint as a pipeline that takes the messages of one socket read
   * together (bufferTurn): each is decoded and validated alone, then all valid ones
   * go through the scopes in one turn, in arrival order, and each gets its reply.
   */
  private serveMany<T>(
    svc: Service,
    name: string,
    subject: string,
    decode: (msg: ServiceMsg) => T,
    handleMany: (items: T[]) => unknown[],
  ): void {
    const replied = this.repliedHook(name);
    // When the first message of the current socket read arrived; the read's messages are decided together.
    let turnAt = 0;
    const sub = fromEndpoint(svc, name, subject)
      .pipe(
        tap(() => {
          if (replied && turnAt === 0) turnAt = performance.now();
        }),
        bufferTurn(),
      )
      .subscribe({
        next: (msgs) => {
          const at = turnAt;
          turnAt = 0;
          const done = replied && ((queued: boolean) => replied(at, queued));
          if (this.stopping) {
            for (const msg of msgs) this.fail(subject, msg, unavailable("sluice is shutting down"));
            return;
          }
          const items: T[] = [];
          const owners: ServiceMsg[] = [];
          for (const msg of msgs) {
            try {
              items.push(decode(msg));
              owners.push(msg);
            } catch (error) {
              this.fail(subject, msg, error);
            }
          }
          let results: unknown[];
          try {
            results = handleMany(items);
          } catch (error) {
            for (const msg of owners) this.fail(subject, msg, error);
            return;
          }
          for (let i = 0; i < owners.length; i++) {
            // One reply's failure must not cost the others theirs, nor end the endpoint.
            try {
              this.answer(subject, owners[i]!, results[i], done);
            } catch (err) {
              this.logger.error({ err, subject }, "answering a request failed");
            }
          }
          this.expireAfterTurn();
        },
        error: (err) => this.logger.error({ err, endpoint: name }, "endpoint subscription failed"),
      });
    this.subs.push(sub);
  }

  /**
   * Settle the leases that are due once this turn's replies are written (a task after it),
   * rather than all at the start of the next admission. Decisions still never see an
   * expired lease (each admission first settles what is due); this only moves most of that
   * work to where the service would otherwise wait for its next message. Measured with the
   * bench's 64 auto-batched callers (6 alternating rounds, `.tmp/ab.sh` scratch script):
   * 9.02–9.69 µs of the service thread per admission against 9.61–9.99, and as many or
   * more admissions a second in every round (+0.2% to +12%); single admissions the same.
   */
  private expireAfterTurn(): void {
    if (this.expiryQueued) return;
    this.expiryQueued = true;
    setImmediate(() => {
      this.expiryQueued = false;
      if (!this.stopping) this.admissions.expireDue();
    });
  }

  /**
   * The observer's `replied` for a decision endpoint, as a function of the receipt
   * time (performance.now(), ms: a measurement of this process, not domain time).
   */
  private repliedHook(name: string): ((at: number, queued: boolean) => void) | undefined {
    const replied = this.opts.observer?.replied;
    if (!replied || (name !== "admit" && name !== "admit-batch")) return undefined;
    return (at, queued) => this.tell(() => replied.call(this.opts.observer, name, (performance.now() - at) / 1000, queued));
  }

  private answer(subject: string, msg: ServiceMsg, result: unknown, replied?: (queued: boolean) => void): void {
    if (result instanceof SluiceRequestError) this.fail(subject, msg, result);
    else if (result instanceof Promise) {
      this.inFlight++;
      result
        .then(
          (v) => {
            replyJson(this.out, msg, v, this.logger);
            replied?.(true);
          },
          (e) => this.fail(subject, msg, e),
        )
        .finally(() => {
          if (--this.inFlight === 0) this.idle?.();
        });
    } else {
      replyJson(this.out, msg, result, this.logger);
      replied?.(false);
    }
  }

  private fail(subject: string, msg: ServiceMsg, error: unknown): void {
    const code = error instanceof SluiceRequestError ? error.code : "internal";
    let counts = this.errorCounts.get(subject);
    if (!counts) this.errorCounts.set(subject, (counts = new Map()));
    counts.set(code, (counts.get(code) ?? 0) + 1);
    replyError(msg, error, this.logger);
  }

  private admitBatch(body: unknown): Promise<unknown[]> | unknown[] {
    if (!Array.isArray(body)) throw badRequest("body: expected an array of admission requests");
    if (body.length > MAX_BATCH) throw new SluiceRequestError("too_large", `body: ${body.length} requests, at most ${MAX_BATCH}`);
    const out: unknown[] = new Array(body.length);
    const valid: AdmitRequest[] = [];
    const at: number[] = [];
    body.forEach((item, i) => {
      const r = safeParseAdmitRequest(item);
      if (r.success) {
        valid.push(r.data);
        at.push(i);
      } else out[i] = this.batchItemError(badRequest(describeZodError(r.error)), i);
    });
    let waiting = false;
    this.admissions.admitMany(valid).forEach((d, j) => {
      const i = at[j]!;
      if (d instanceof Promise) {
        waiting = true;
        // A wait that ends in an error (shutting down) is that item's error: the other items were
        // decided, some admitted with a lease and an event, and their callers must get them.
        out[i] = d.catch((e: unknown) => this.batchItemError(e, i));
      } else out[i] = d instanceof SluiceRequestError ? this.batchItemError(d, i) : d;
    });
    return waiting ? Promise.all(out) : out;
  }

  /**
   * An error in place of item `item` of a batch reply. A field at fault is named by the
   * item's place (`[3].tokens: …`); an unexpected error is logged and answered `internal`.
   */
  private batchItemError(e: unknown, item: number): { error: { code: string; message: string } } {
    const err = isSluiceRequestError(e) ? e : new SluiceRequestError("internal", "internal error", { cause: e });
    if (err.code === "internal") this.logger.error({ err: err.cause ?? err, item }, "batch item failed");
    return { error: { code: err.code, message: clipErrorMessage(err.code === "bad_request" ? `[${item}].${err.message}` : err.message) } };
  }

  private applyPolicy(doc: PolicyDocument): void {
    this.registry.setPolicy(doc);
    this.stateWakes.rewatch();
    if (this.persistence) for (const [scope] of this.registry.entries()) this.persistence.markDirty(scope);
    this.admissions.policyChanged();
    this.logger.info({ kinds: Object.keys(doc.scopes) }, "policy replaced");
  }

  /**
   * A policy set at run time (`admin.policy.set`) is stored with the fingerprint of the
   * start policy it replaced. It is put back in force while the start policy is the same;
   * once that changed (its file was edited), the start policy wins and the stored one is
   * forgotten, so that reverting the file later does not bring it back.
   */
  private async restorePolicy(persistence: Persistence): Promise<void> {
    const stored = await persistence.snapshots.loadPolicy();
    if (!stored) return;
    const setAt = new Date(stored.setAt).toISOString();
    if (stored.base !== this.policyBase) {
      this.logger.info({ setAt }, "the start policy changed since a policy was set at run time: using the start policy");
      await persistence.snapshots.clearPolicy();
      return;
    }
    let doc: PolicyDocument;
    try {
      doc = parsePolicy(stored.doc);
    } catch (err) {
      this.logger.warn({ err, setAt }, "the policy set at run time no longer validates: using the start policy");
      return;
    }
    this.registry.setPolicy(doc);
    this.stateWakes.rewatch();
    this.logger.info({ setAt, kinds: Object.keys(doc.scopes) }, "using the policy set at run time (admin.policy.set); the start policy has not changed since");
  }

  private inspect(body: unknown): unknown {
    const req = parseOrThrow(inspectRequestSchema, body);
    if ("scope" in req && !req.scope.includes(":")) throw badRequest('scope: expected "kind:value"');
    // Leases past their expiry that the lenient timer has not reached yet (EXPIRY_SLACK_MS).
    this.admissions.expireDue();
    if ("scope" in req) {
      // A passivated (or restored) scope with state comes back to life to be shown.
      const actor = this.registry.peek(req.scope) ?? (this.registry.dormantContext(req.scope) ? this.registry.get(req.scope) : undefined);
      return inspectScope(req.scope, actor, this.registry.policy, this.clock.now());
    }
    return this.registry.list(req.list, req.limit ?? 1000);
  }

  private publishDecision(ev: DecisionEvent): void {
    let token = this.modelTokens.get(ev.model);
    if (token === undefined) {
      token = encodeSubjectToken(ev.model);
      if (this.modelTokens.size < 100_000) this.modelTokens.set(ev.model, token);
    }
    const subject = `${this.prefix}.decisions.${ev.decision}.${token}`;
    if (this.opts.decisionEvents) this.opts.decisionEvents.publish(subject, ev);
    else this.safePublish(subject, JSON.stringify(ev));
  }

  private publishNotice(scope: string, n: ScopeNotice): void {
    const { kind, value } = parseScope(scope);
    const body = { ...n, ts: this.clock.now(), scope };
    this.logger.info({ scope, event: n.type }, "scope state changed");
    this.stateWakes.notice(scope, n);
    this.safePublish(`${this.prefix}.events.${kind}.${encodeSubjectToken(value)}`, JSON.stringify(body));
  }

  private safePublish(subject: string, body: string): void {
    publishEvent(this.out, subject, body, this.logger);
  }

  private warnNearThreshold(model: string, now: number): void {
    const ctx = this.registry.context(`model:${model}`);
    if (!ctx) return;
    const near = latencyOver(ctx, now, 0.9);
    if (near && !this.warned.has(model)) {
      this.warned.add(model);
      this.logger.warn({ model }, "latency average above 90% of its threshold");
    } else if (!near) this.warned.delete(model);
  }

  /** Answer `unavailable` from now on, settle waiting callers, stop the endpoints and every actor. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.passivator.stop();
    this.stateWakes.stop();
    this.heapWatch?.stop();
    this.admissions.close();
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    // The last replies, ahead of the drain that follows.
    this.out.flush();
    if (this.persistence) {
      // Appends in flight are applied (or fail) first; then the final snapshot.
      await this.admissions.settled();
      await this.persistence.stop().catch((err) => this.logger.warn({ err }, "final snapshot failed"));
    }
    await this.service?.stop().catch((err) => this.logger.warn({ err }, "service stop failed"));
    for (const s of this.subs) s.unsubscribe();
    this.registry.stopAll();
    this.logger.info("sluice stopped");
  }
}

export type { Decision };

/**
 * `msg`, if it can be answered. An admission published without a reply subject would take
 * a slot, rate and budget for a lease nobody receives (held until it expires): it is not
 * decided. (Its refusal, with no one to send it to, is logged at debug and counted.)
 */
function replyable(msg: ServiceMsg): ServiceMsg {
  if (!msg.reply) throw badRequest("an admission needs a reply subject (send it as a request): not decided");
  return msg;
}

/** A message as an endpoint received it, with its receipt time (performance.now(), when measured). */
interface Received {
  msg: ServiceMsg;
  at: number;
}
