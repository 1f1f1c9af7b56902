/**
 * A small deterministic discrete-event simulator for sluice, in-process and in
 * virtual time: a priority queue of events on a {@link ManualClock}, simulated
 * workers that admit through {@link Admissions} (no NATS), and a seeded PRNG for
 * everything random. Advancing the clock event by event also fires sluice's own
 * timers (lease expiry, waiter wake-ups) and the RxJS scheduler built on it.
 */
import { ManualClock } from "../../src/clock.js";
import { Admissions } from "../../src/admission/Admissions.js";
import { ScopeRegistry } from "../../src/registry/ScopeRegistry.js";
import type { Decision } from "../../src/protocol/decision.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";
import { admitRequestSchema, reportSchema, type AdmitRequestInput, type ReportInput } from "../../src/protocol/schemas.js";

import { mulberry32 } from "../helpers/prng.js";
import { MinHeap } from "../../src/admission/MinHeap.js";
export { mulberry32 };

interface SimEvent {
  at: number;
  seq: number;
  fn: () => void;
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** The simulator: virtual time (ms since start), an event queue, a seeded PRNG. */
export class Sim {
  readonly clock = new ManualClock();
  readonly start = this.clock.now();
  readonly random: () => number;
  /** Events by (time, insertion order). */
  private readonly queue = new MinHeap<SimEvent>(before);
  private seq = 0;
  /** Events run so far. */
  events = 0;

  constructor(seed: number) {
    this.random = mulberry32(seed);
  }

  /** Virtual time since the start, ms. */
  get t(): number {
    return this.clock.now() - this.start;
  }

  /** Run `fn` `ms` from now. */
  after(ms: number, fn: () => void): void {
    this.queue.push({ at: this.t + Math.max(0, ms), seq: ++this.seq, fn });
  }

  /** Uniform in [lo, hi), whole ms. */
  uniform(lo: number, hi: number): number {
    return Math.round(lo + this.random() * (hi - lo));
  }

  /** Run every event up to `untilMs`, then leave the clock there. */
  run(untilMs: number): void {
    for (;;) {
      const next = this.queue.peek();
      if (!next || next.at > untilMs) break;
      this.queue.pop();
      // Fires sluice's own timers due before (or at) the event first.
      if (next.at > this.t) this.clock.advance(next.at - this.t);
      this.events++;
      next.fn();
    }
    if (untilMs > this.t) this.clock.advance(untilMs - this.t);
  }
}

/** sluice in-process: a registry and admissions on the simulator's clock and PRNG. */
export class SimSluice {
  readonly registry: ScopeRegistry;
  readonly admissions: Admissions;
  /** Rejections by reason. */
  readonly rejects = new Map<string, number>();
  admits = 0;
  /** Sum of the delayMs handed out, for the mean pacing delay. */
  delaySum = 0;

  constructor(readonly sim: Sim, policy: unknown) {
    this.registry = new ScopeRegistry({ policy: parsePolicy(policy), clock: sim.clock });
    this.admissions = new Admissions({ registry: this.registry, clock: sim.clock, random: sim.random });
  }

  admit(req: AdmitRequestInput): Decision {
    const d = this.admissions.admit(admitRequestSchema.parse(req));
    if (d instanceof Promise) throw new Error("simulated workers never wait in sluice's queue (waitMs 0): expected an immediate decision");
    if (d.decision === "admit") {
      this.admits++;
      this.delaySum += d.delayMs;
    } else this.rejects.set(d.reason, (this.rejects.get(d.reason) ?? 0) + 1);
    return d;
  }

  report(rep: ReportInput): void {
    this.admissions.report(reportSchema.parse(rep));
  }
}

/** What the simulated upstream answered. */
export interface UpstreamResult {
  outcome: "ok" | "rate_limited";
  ttftMs?: number;
  latencyMs: number;
  /** The upstream's own Retry-After, on 429, when it sends one. */
  retryAfterMs?: number;
}

/** A simulated upstream: a call starts now and `done` runs when it answers. */
export interface Upstream {
  call(done: (r: UpstreamResult) => void): void;
}

/** One upstream call, as the upstream logged it. */
export interface CallRecord {
  /** Start, ms since the simulation's start. */
  at: number;
  ok: boolean;
  ttftMs?: number;
}

/**
 * A worker calling back to back through sluice: admit; on reject come back after
 * `retryAfterMs`; on admit wait `delayMs`, call upstream, report the outcome
 * (with the upstream's Retry-After and TTFT), and go again.
 */
export function sluiceWorker(
  sim: Sim,
  sluice: SimSluice,
  opts: { key: string; model: string; upstream: Upstream; startAfterMs?: number },
): void {
  const loop = (): void => {
    const d = sluice.admit({ key: opts.key, model: opts.model });
    if (d.decision === "reject") {
      sim.after(d.retryAfterMs ?? 1000, loop);
      return;
    }
    sim.after(d.delayMs, () =>
      opts.upstream.call((r) => {
        const rep: ReportInput = { lease: d.lease, outcome: r.outcome, latencyMs: r.latencyMs };
        if (r.ttftMs !== undefined) rep.ttftMs = r.ttftMs;
        if (r.retryAfterMs !== undefined) rep.retryAfterMs = r.retryAfterMs;
        sluice.report(rep);
        loop();
      }),
    );
  };
  sim.after(opts.startAfterMs ?? 0, loop);
}

/** A worker without sluice: calls back to back; after a 429 it sleeps a fixed delay and retries. */
export function fixedDelayWorker(sim: Sim, opts: { upstream: Upstream; delayMs: number; startAfterMs?: number }): void {
  const loop = (): void =>
    opts.upstream.call((r) => {
      if (r.outcome === "rate_limited") sim.after(opts.delayMs, loop);
      else loop();
    });
  sim.after(opts.startAfterMs ?? 0, loop);
}

// ---- statistics ----

export function mean(xs: number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Nearest-rank percentile, p in [0, 100]. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** Calls started in [from, to). */
export function window(calls: CallRecord[], from: number, to: number): CallRecord[] {
  return calls.filter((c) => c.at >= from && c.at < to);
}

/** A fixed-width text table for the test output. */
export function table(title: string, header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => "| " + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ") + " |";
  const sep = "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|";
  return [title, line(header), sep, ...cells.slice(1).map(line)].join("\n");
}

export const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
