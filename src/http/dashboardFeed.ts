/**
 * The dashboard's data: every interval (1 s) one frame with each model's breaker,
 * pacing, latency averages and decisions in the interval by reason, and the
 * scopes that have used most of their budget. The last few minutes are kept as
 * compact points so that a page opened now can draw its sparklines at once.
 */
import { type BudgetRow, type ModelView, policyModelView } from "./scopeScan.js";
import type { MetricsSource, SluiceMetrics } from "./metrics.js";

/** Defaults of {@link DashboardFeedOptions}. */
export const DEFAULT_FEED = {
  /** Time between frames, ms. */
  intervalMs: 1000,
  /** Frames kept for the sparklines (3 minutes at 1 s). */
  historyLength: 180,
  /** Most model cards in a frame (the busiest are kept). */
  maxModels: 48,
} as const;

/** One model in a frame. */
export interface ModelFrame extends ModelView {
  /** Admissions in the last interval. */
  admits: number;
  /** Rejections in the last interval, by reason. */
  rejects: Record<string, number>;
  /** Admissions since start. */
  admitTotal: number;
  /** Rejections since start. */
  rejectTotal: number;
  /** Reports in the last interval, by outcome. */
  outcomes: Record<string, number>;
}

/** One frame, as sent on `/events`. */
export interface DashboardFrame {
  /**
   * The frame's number, from 1, one more each frame. It, not `ts`, tells frames
   * apart: frames made within the scan's cache age share the scan and its `ts`.
   */
  seq: number;
  /** Domain time of the figures, ms epoch. */
  ts: number;
  /** Wall time the interval's counts cover, ms. */
  intervalMs: number;
  nats: boolean;
  serving: boolean;
  /** Admissions waiting in the queue. */
  waiting: number;
  /** Live leases. */
  leases: number;
  /** Live actors by kind. */
  actors: Record<string, number>;
  /** Decisions in the interval, all models. */
  admits: number;
  rejects: number;
  /** Models, by name; at most {@link DEFAULT_FEED.maxModels}. */
  models: ModelFrame[];
  /** Models left out of `models`. */
  moreModels: number;
  /** Scopes with the highest budget share. */
  top: BudgetRow[];
}

/** One model in a history point: ttft, itl, admits, rejects by reason, pacing. */
export interface PointModel {
  t: number | null;
  i: number | null;
  a: number;
  r: Record<string, number>;
  p: number | null;
}

/** A frame reduced to what the sparklines draw. */
export interface HistoryPoint {
  /** The frame's {@link DashboardFrame.seq}. */
  seq: number;
  ts: number;
  intervalMs: number;
  m: Record<string, PointModel>;
}

/** Options of {@link DashboardFeed}. */
export interface DashboardFeedOptions {
  metrics: SluiceMetrics;
  source: MetricsSource & { readonly serving: boolean };
  connected: () => boolean;
  /** Time between frames, ms. Default 1000. */
  intervalMs?: number;
  /** Frames kept for the sparklines. Default 180. */
  historyLength?: number;
  /** Most model cards per frame. Default 48. */
  maxModels?: number;
}

/** Makes a frame per interval and hands it to subscribers. */
export class DashboardFeed {
  private readonly intervalMs: number;
  private readonly historyLength: number;
  private readonly maxModels: number;
  private readonly points: HistoryPoint[] = [];
  private readonly listeners = new Set<(frame: DashboardFrame) => void>();
  private timer?: NodeJS.Timeout;
  private last?: DashboardFrame;
  private lastAt = performance.now();
  private seq = 0;
  /** Tallies as of the previous frame, to difference against. */
  private prevDecisions = new Map<string, Map<string, number>>();
  private prevReports = new Map<string, Map<string, number>>();

  constructor(private readonly opts: DashboardFeedOptions) {
    this.intervalMs = opts.intervalMs ?? DEFAULT_FEED.intervalMs;
    this.historyLength = opts.historyLength ?? DEFAULT_FEED.historyLength;
    this.maxModels = opts.maxModels ?? DEFAULT_FEED.maxModels;
    this.prevDecisions = copyTally(opts.metrics.decisionTally);
    this.prevReports = copyTally(opts.metrics.reportTally);
  }

  /** Make a frame every interval. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Stop making frames and forget the subscribers. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.listeners.clear();
  }

  /** Receive every frame; returns the unsubscribe. */
  subscribe(fn: (frame: DashboardFrame) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The latest frame (made now if there is none yet). */
  latest(): DashboardFrame {
    return this.last ?? this.tick();
  }

  /** The kept history, oldest first. */
  history(): HistoryPoint[] {
    return this.points.slice();
  }

  /** Make a frame now, keep its point and send it to the subscribers. */
  tick(): DashboardFrame {
    const frame = this.makeFrame();
    this.last = frame;
    this.points.push(toPoint(frame));
    if (this.points.length > this.historyLength) this.points.splice(0, this.points.length - this.historyLength);
    for (const fn of this.listeners) {
      try {
        fn(frame);
      } catch {
        // A failing subscriber (a broken socket) must not stop the others.
      }
    }
    return frame;
  }

  private makeFrame(): DashboardFrame {
    const { metrics, source } = this.opts;
    const t = performance.now();
    const intervalMs = Math.max(1, Math.round(t - this.lastAt));
    this.lastAt = t;
    const scan = metrics.scanner?.get();

    const decisions = metrics.decisionTally;
    const reports = metrics.reportTally;
    const names = new Set<string>([...(scan?.models.keys() ?? []), ...decisions.keys()]);
    const all: ModelFrame[] = [];
    let admits = 0;
    let rejects = 0;
    for (const model of names) {
      // A model with decisions but no actor in the scan (asleep, or new since the scan) is shown as its policy says.
      const view: ModelView = scan?.models.get(model) ?? policyModelView(source.registry.policy, model);
      const now = decisions.get(model);
      const before = this.prevDecisions.get(model);
      const frame: ModelFrame = { ...view, admits: 0, rejects: {}, admitTotal: 0, rejectTotal: 0, outcomes: {} };
      for (const [key, n] of now ?? []) {
        const [decision, reason] = key.split(":") as [string, string];
        const delta = n - (before?.get(key) ?? 0);
        if (decision === "admit") {
          frame.admitTotal += n;
          frame.admits += delta;
        } else {
          frame.rejectTotal += n;
          if (delta > 0) frame.rejects[reason] = delta;
          rejects += delta;
        }
      }
      admits += frame.admits;
      const rep = reports.get(model);
      const repBefore = this.prevReports.get(model);
      for (const [outcome, n] of rep ?? []) {
        const delta = n - (repBefore?.get(outcome) ?? 0);
        if (delta > 0) frame.outcomes[outcome] = delta;
      }
      all.push(frame);
    }
    this.prevDecisions = copyTally(decisions);
    this.prevReports = copyTally(reports);

    let shown = all;
    if (all.length > this.maxModels) {
      shown = all.sort((a, b) => b.admitTotal + b.rejectTotal - (a.admitTotal + a.rejectTotal)).slice(0, this.maxModels);
    }
    shown.sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));

    return {
      seq: ++this.seq,
      ts: scan?.now ?? source.clock.now(),
      intervalMs,
      nats: this.opts.connected(),
      serving: source.serving,
      waiting: source.admissions.waiting,
      leases: source.admissions.leases.size,
      actors: Object.fromEntries(scan?.actors ?? []),
      admits,
      rejects,
      models: shown,
      moreModels: all.length - shown.length,
      top: scan?.top ?? [],
    };
  }
}

function copyTally(t: Map<string, Map<string, number>>): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const [k, v] of t) out.set(k, new Map(v));
  return out;
}

function toPoint(frame: DashboardFrame): HistoryPoint {
  // No prototype: a model named "__proto__" is a key like any other.
  const m: Record<string, PointModel> = Object.create(null);
  for (const f of frame.models) m[f.model] = { t: f.ttftMs, i: f.itlMs, a: f.admits, r: f.rejects, p: f.pacingMs };
  return { seq: frame.seq, ts: frame.ts, intervalMs: frame.intervalMs, m };
}
