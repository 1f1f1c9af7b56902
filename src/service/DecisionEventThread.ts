import { existsSync } from "node:fs";
import { Worker } from "node:worker_threads";
import type { Logger } from "../log.js";
import type { DecisionEvent } from "../protocol/decision.js";

/** Defaults of {@link DecisionEventThreadOptions}. */
export const DEFAULT_EVENT_THREAD = {
  /** Most events handed over and not yet published; past it new ones are dropped (and counted). */
  maxQueued: 100_000,
  /** How long the thread may take to connect, ms. */
  startTimeoutMs: 10_000,
  /** How long its drain may take on stop, ms. */
  stopTimeoutMs: 5_000,
  /**
   * Fewest events of one turn that go to the thread (a smaller turn's are published inline):
   * as many as a full `admit.batch` message of the bench, more than a turn of 64 single
   * admissions in flight can hold (those lost throughput with the thread: 12.9–14.6k/s
   * against 14.4–15.8k inline, where the callers need the other core).
   */
  minTurn: 100,
} as const;

export interface DecisionEventThreadOptions {
  /** The NATS servers of the service's own connection. Credentials and TLS come from the environment, as for the service. */
  servers: string[];
  logger: Logger;
  /** Publish one event on the service's own connection (subject, JSON body). */
  inline: (subject: string, body: string) => void;
  /** Connection name. Default `sluice-events`. */
  name?: string;
  maxQueued?: number;
  startTimeoutMs?: number;
  stopTimeoutMs?: number;
  minTurn?: number;
}

/** Messages to the thread. `batch` is subject, body (JSON), subject, body, … */
export type EventThreadRequest = { type: "events"; batch: string[] } | { type: "stop" };
/** Messages from the thread. */
export type EventThreadReply =
  | { type: "ready" }
  | { type: "failed"; message: string }
  | { type: "done"; count: number }
  | { type: "stopped"; error?: string };

/**
 * Publishes decision events (`<p>.decisions.<decision>.<model>`) of busy turns from a
 * worker thread with a NATS connection of its own. One NATS message per decision is
 * about a quarter of the service's work under batch load: measured on a 2-core
 * machine, 20.5–20.9 µs of the service thread per batched decision with the events
 * published there, 15.7–16.3 µs without them. The service thread encodes each event
 * and hands the busy turns of one pass of the event loop over in one message (at its
 * check phase: `admit.batch` messages of one socket read are decided in a task each,
 * and a message per task woke the thread five times as often); the thread publishes them.
 *
 * Only turns of `minTurn` events or more go to the thread. At low load the thread's
 * wake-ups cost more than they save: they compete with the NATS server and the
 * callers for the other core, and a lone request's reply came later (p99 at 1 in
 * flight +0.5 to +1.8 ms over an echo responder, against +0.24 to +0.41 inline).
 * Events keep their order: while the thread has any unpublished, a small turn's go
 * to it too.
 *
 * When the thread falls more than `maxQueued` events behind, new events are dropped
 * and counted (a warning says how many) rather than queued without bound. If the
 * thread dies, events are published inline from then on.
 */
export class DecisionEventThread {
  /** This turn's events: subject, JSON, subject, JSON, … */
  private batch: string[] = [];
  /** Busy turns' events not yet handed over; they go at the check phase. */
  private outbox: string[] = [];
  private posting: ReturnType<typeof setImmediate> | undefined;
  /** Events handed over and not yet reported published. */
  private queued = 0;
  private dead = false;
  private stopping: Promise<void> | undefined;
  private readonly maxQueued: number;
  private readonly minTurn: number;
  /** Events dropped because the thread was too far behind, or lost with it. */
  dropped = 0;
  /** Messages that handed events over to the thread. */
  handovers = 0;
  private droppedWarnedAt = 0;

  private constructor(
    private readonly worker: Worker,
    private readonly opts: DecisionEventThreadOptions,
  ) {
    this.maxQueued = opts.maxQueued ?? DEFAULT_EVENT_THREAD.maxQueued;
    this.minTurn = opts.minTurn ?? DEFAULT_EVENT_THREAD.minTurn;
  }

  /** Start the thread and wait until it is connected; rejects (and leaves no thread) if it cannot connect. */
  static start(opts: DecisionEventThreadOptions): Promise<DecisionEventThread> {
    const worker = new Worker(workerUrl(), { workerData: { servers: opts.servers, name: opts.name ?? "sluice-events" } });
    const timeoutMs = opts.startTimeoutMs ?? DEFAULT_EVENT_THREAD.startTimeoutMs;
    return new Promise<DecisionEventThread>((resolve, reject) => {
      // Only these listeners are removed: the Worker keeps listeners of its own (a 'message' one starts its port).
      const done = () => {
        clearTimeout(timer);
        worker.off("error", fail);
        worker.off("exit", exited);
        worker.off("message", first);
      };
      const fail = (err: Error) => {
        done();
        void worker.terminate();
        reject(err);
      };
      const exited = (code: number) => fail(new Error(`decision-event thread: exited with code ${code} before it was ready`));
      const first = (m: EventThreadReply) => {
        if (m.type !== "ready") return fail(new Error(`decision-event thread: ${m.type === "failed" ? m.message : `unexpected ${m.type}`}`));
        done();
        resolve(new DecisionEventThread(worker, opts).watch());
      };
      const timer = setTimeout(() => fail(new Error(`decision-event thread: not connected within ${timeoutMs} ms`)), timeoutMs);
      worker.on("error", fail);
      worker.on("exit", exited);
      worker.on("message", first);
    });
  }

  private watch(): this {
    this.worker.on("message", (m: EventThreadReply) => {
      if (m.type === "done") this.queued -= m.count;
    });
    const died = (err?: unknown) => {
      if (this.dead) return;
      this.dead = true;
      // What was handed over is lost with it; the current turn's (flushed later) are published inline.
      const lost = this.queued;
      this.dropped += lost;
      this.queued = 0;
      if (this.stopping === undefined) this.opts.logger.error({ err, lost }, "decision-event thread died: events are published by the service thread from now on");
    };
    this.worker.on("error", died);
    this.worker.on("exit", () => died());
    return this;
  }

  /** Publish an event: at the end of the turn, from the thread or inline. */
  publish(subject: string, ev: DecisionEvent): void {
    if (this.dead) return this.opts.inline(subject, JSON.stringify(ev));
    if (this.queued + (this.outbox.length + this.batch.length) / 2 >= this.maxQueued) {
      this.dropped++;
      const now = Date.now();
      if (now - this.droppedWarnedAt >= 10_000) {
        this.droppedWarnedAt = now;
        this.opts.logger.warn({ dropped: this.dropped, queued: this.queued }, "decision-event thread is behind: events dropped");
      }
      return;
    }
    if (this.batch.length === 0) queueMicrotask(this.flush);
    // Encoded here: a string crosses to the thread as one copy, an object field by field.
    this.batch.push(subject, JSON.stringify(ev));
  }

  private readonly flush = (): void => {
    const batch = this.batch;
    if (batch.length === 0) return;
    this.batch = [];
    if (this.dead || (batch.length / 2 < this.minTurn && this.queued === 0 && this.outbox.length === 0)) {
      this.publishInline(batch);
      return;
    }
    if (this.outbox.length === 0) this.outbox = batch;
    else for (const s of batch) this.outbox.push(s);
    this.posting ??= setImmediate(this.post);
  };

  private readonly post = (): void => {
    if (this.posting !== undefined) clearImmediate(this.posting);
    this.posting = undefined;
    const out = this.outbox;
    if (out.length === 0) return;
    this.outbox = [];
    if (this.dead) return this.publishInline(out);
    this.queued += out.length / 2;
    this.handovers++;
    this.worker.postMessage({ type: "events", batch: out } satisfies EventThreadRequest);
  };

  private publishInline(batch: readonly string[]): void {
    for (let i = 0; i < batch.length; i += 2) this.opts.inline(batch[i]!, batch[i + 1]!);
  }

  /** Publish what was handed over, drain the thread's connection and end the thread. */
  stop(): Promise<void> {
    this.stopping ??= this.stopNow();
    return this.stopping;
  }

  private async stopNow(): Promise<void> {
    this.flush();
    this.post();
    if (this.dead) return;
    const timeoutMs = this.opts.stopTimeoutMs ?? DEFAULT_EVENT_THREAD.stopTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const outcome = await new Promise<EventThreadReply | "exited" | "late">((resolve) => {
      this.worker.on("message", (m: EventThreadReply) => {
        if (m.type === "stopped") resolve(m);
      });
      this.worker.once("exit", () => resolve("exited"));
      timer = setTimeout(() => resolve("late"), timeoutMs);
      this.worker.postMessage({ type: "stop" } satisfies EventThreadRequest);
    });
    clearTimeout(timer);
    if (outcome === "late") this.opts.logger.warn({ timeoutMs }, "decision-event thread: drain did not finish in time");
    else if (outcome !== "exited" && outcome.type === "stopped" && outcome.error) this.opts.logger.warn({ err: outcome.error }, "decision-event thread: drain failed");
    this.dead = true;
    await this.worker.terminate();
  }
}

/**
 * The thread's script, beside this module in the build. Under the tests this module runs
 * from its TypeScript source; the thread then runs from the build (`pretest` makes it).
 */
function workerUrl(): URL {
  const here = new URL("./decisionEventWorker.js", import.meta.url);
  return existsSync(here) ? here : new URL("../../dist/src/service/decisionEventWorker.js", import.meta.url);
}
