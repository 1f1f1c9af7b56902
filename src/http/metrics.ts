/**
 * Prometheus metrics of one sluice process, in a registry of their own (never
 * prom-client's global one, so that an embedding program keeps its own).
 *
 * Counters and the decision-time histogram are fed by the service's observer,
 * on the decision path. Gauges are computed when scraped, from one
 * {@link ScopeScanner} pass over the live actors shared by all of them.
 *
 * Label cardinality is bounded: `model` keeps the first {@link DEFAULT_LABEL_CAP}
 * model names and writes `other` after that; scope kinds likewise (100); series
 * per scope exist only for scopes the policy names in `overrides`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { AppliedReport } from "../admission/Admissions.js";
import type { DecisionEvent } from "../protocol/decision.js";
import type { ServiceObserver } from "../service/SluiceService.js";
import { DEFAULT_LABEL_CAP, LabelCap } from "./labelCap.js";
import { BREAKER_LEVEL, type ScopeScan, ScopeScanner, type ScopeScannerOptions, type ScopeSource } from "./scopeScan.js";

/** Bucket bounds of `sluice_decision_seconds`: 50 µs to 5 min (queued callers wait up to `waitMs`). */
export const DECISION_SECONDS_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
];

/** What the gauges read besides the scope actors: a running `SluiceService` and its NATS connection. */
export interface MetricsSource extends ScopeSource {
  readonly admissions: { readonly waiting: number; readonly leases: { readonly size: number } };
  /** Passivated scopes kept asleep with their state. */
  readonly registry: ScopeSource["registry"] & { readonly dormantCount?: number };
  /** Is memory short (admissions that would grow state refused)? */
  readonly memoryShort?: boolean;
}

/** Options of {@link SluiceMetrics}. */
export interface SluiceMetricsOptions {
  /** Distinct model names that keep their own label; later ones are `other`. Default 1000. */
  maxModels?: number;
  /** Also collect prom-client's process and Node.js metrics (`process_*`, `nodejs_*`). Default true. */
  defaultMetrics?: boolean;
  /** Options of the scan behind the gauges. */
  scan?: ScopeScannerOptions;
}

/** Cumulative decision counts of one model label, by `decision:reason` (`admit:ok`, `reject:rate_limited`, …). */
export type DecisionTally = Map<string, number>;

/**
 * The metrics: create it before the service, pass {@link SluiceMetrics.observer}
 * as the service's `observer`, then {@link SluiceMetrics.bind} the running service.
 */
export class SluiceMetrics {
  /** The registry to scrape; nothing else registers here. */
  readonly registry = new Registry();
  /** Model labels, bounded. */
  readonly models: LabelCap;
  /** Decision counts by model label, for the dashboard's rates (the same figures as `sluice_decisions_total`). */
  readonly decisionTally = new Map<string, DecisionTally>();
  /** Report counts by model label and outcome. */
  readonly reportTally = new Map<string, Map<string, number>>();
  /** The observer to give the service. */
  readonly observer: ServiceObserver;

  private source?: MetricsSource;
  private connected: () => boolean = () => false;
  private scannerValue?: ScopeScanner;
  private readonly scanOptions: ScopeScannerOptions;

  private readonly decisions: Counter<"model" | "decision" | "reason">;
  private readonly reports: Counter<"model" | "outcome" | "status">;
  private readonly decisionSeconds: Histogram<"endpoint" | "queued">;

  constructor(opts: SluiceMetricsOptions = {}) {
    this.models = new LabelCap(opts.maxModels ?? DEFAULT_LABEL_CAP);
    this.scanOptions = { ...opts.scan, modelLabel: (m) => this.models.label(m) };
    const registers = [this.registry];

    this.decisions = new Counter({
      name: "sluice_decisions_total",
      help: "Admission decisions, by model, decision (admit, reject) and reason",
      labelNames: ["model", "decision", "reason"],
      registers,
    });
    this.reports = new Counter({
      name: "sluice_reports_total",
      help: "Reports applied (repeats not counted), by model, outcome and status (applied, late, orphan)",
      labelNames: ["model", "outcome", "status"],
      registers,
    });
    this.decisionSeconds = new Histogram({
      name: "sluice_decision_seconds",
      help: "Time from receipt of an admit or admit.batch message to its reply; queued=true: the reply waited in sluice (waitMs, pacing)",
      labelNames: ["endpoint", "queued"],
      buckets: DECISION_SECONDS_BUCKETS,
      registers,
    });

    // Gauges: each reads the one shared scan of this scrape.
    const scanGauge = <L extends string>(name: string, help: string, labelNames: L[], fill: (g: Gauge<L>, scan: ScopeScan) => void) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        collect: () => {
          const g = this.registry.getSingleMetric(name) as Gauge<L>;
          g.reset();
          const scan = this.scan();
          if (scan) fill(g, scan);
        },
      });

    scanGauge("sluice_live_actors", "Live scope actors, by scope kind", ["kind"], (g, s) => {
      for (const [kind, n] of s.actors) g.set({ kind }, n);
    });
    scanGauge("sluice_breaker_state", "Breaker state of a model: 0 closed, 1 half-open, 2 open (models with a breaker)", ["model"], (g, s) => {
      for (const m of s.models.values()) if (m.hasBreaker) g.set({ model: m.model }, BREAKER_LEVEL[m.breaker]);
    });
    scanGauge("sluice_latency_average_ms", "Time-weighted latency average of a model, ms (models with a latency policy)", ["model", "metric"], (g, s) => {
      for (const m of s.models.values()) {
        if (m.ttftMs !== null) g.set({ model: m.model, metric: "ttft" }, m.ttftMs);
        if (m.itlMs !== null) g.set({ model: m.model, metric: "itl" }, m.itlMs);
      }
    });
    scanGauge("sluice_pacing_interval_ms", "Adaptive pacing interval of a model, ms; 0 while unpaced (models with adaptive pacing)", ["model"], (g, s) => {
      for (const m of s.models.values()) if (m.pacingMs !== null) g.set({ model: m.model }, m.pacingMs);
    });
    scanGauge("sluice_budget_used", "Settled budget usage summed over the live scopes of a kind, in the budget's unit", ["kind", "unit"], (g, s) => {
      for (const b of s.budgets) g.set({ kind: b.kind, unit: b.unit }, b.used);
    });
    scanGauge("sluice_budget_reserved", "Budget reserved by unsettled leases, summed over the live scopes of a kind", ["kind", "unit"], (g, s) => {
      for (const b of s.budgets) g.set({ kind: b.kind, unit: b.unit }, b.reserved);
    });
    scanGauge("sluice_budget_limit", "Budget limits summed over the live scopes of a kind", ["kind", "unit"], (g, s) => {
      for (const b of s.budgets) g.set({ kind: b.kind, unit: b.unit }, b.limit);
    });
    scanGauge("sluice_scope_budget_used", "Settled budget usage of a scope that the policy names in overrides", ["scope", "unit"], (g, s) => {
      for (const r of s.named) g.set({ scope: r.scope, unit: r.unit }, r.used);
    });
    scanGauge("sluice_scope_budget_limit", "Budget limit of a scope that the policy names in overrides", ["scope", "unit"], (g, s) => {
      for (const r of s.named) g.set({ scope: r.scope, unit: r.unit }, r.limit);
    });

    new Gauge({
      name: "sluice_nats_connected",
      help: "1 while the NATS connection is up, 0 otherwise",
      registers,
      collect: () => {
        (this.registry.getSingleMetric("sluice_nats_connected") as Gauge).set(this.connected() ? 1 : 0);
      },
    });
    const sourceGauge = (name: string, help: string, read: (s: MetricsSource) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect: () => {
          const g = this.registry.getSingleMetric(name) as Gauge;
          if (this.source) g.set(read(this.source));
        },
      });
    sourceGauge("sluice_waiting_admissions", "Admissions waiting in sluice's queue (waitMs)", (s) => s.admissions.waiting);
    sourceGauge("sluice_live_leases", "Leases admitted and not yet reported or expired", (s) => s.admissions.leases.size);
    sourceGauge("sluice_passivated_scopes", "Passivated scopes kept asleep with their state (live ones: sluice_live_actors)", (s) => s.registry.dormantCount ?? 0);
    sourceGauge("sluice_memory_short", "1 while the heap is short (85% of the old generation's ceiling, until under 80%): admissions that would grow state are refused", (s) => (s.memoryShort ? 1 : 0));

    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    this.observer = {
      decision: (ev) => this.onDecision(ev),
      report: (r) => this.onReport(r),
      replied: (endpoint, seconds, queued) => this.decisionSeconds.observe({ endpoint, queued: queued ? "true" : "false" }, seconds),
    };
  }

  /** Read gauges from `source` from now on; `connected` tells whether NATS is up. */
  bind(source: MetricsSource, connected: () => boolean): void {
    this.source = source;
    this.connected = connected;
    this.scannerValue = new ScopeScanner(source, this.scanOptions);
  }

  /** The scanner shared by the gauges and the dashboard; undefined until {@link bind}. */
  get scanner(): ScopeScanner | undefined {
    return this.scannerValue;
  }

  /** The Prometheus text exposition; the gauges share one fresh scan. */
  async metrics(): Promise<string> {
    this.scannerValue?.invalidate();
    return this.registry.metrics();
  }

  /** Content type of {@link metrics}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  private scan(): ScopeScan | undefined {
    return this.scannerValue?.get();
  }

  private onDecision(ev: DecisionEvent): void {
    const model = this.models.label(ev.model);
    this.decisions.inc({ model, decision: ev.decision, reason: ev.reason });
    bump(this.decisionTally, model, `${ev.decision}:${ev.reason}`);
  }

  private onReport(r: AppliedReport): void {
    const model = this.models.label(r.model);
    this.reports.inc({ model, outcome: r.outcome, status: r.status });
    bump(this.reportTally, model, r.outcome);
  }
}

function bump(tally: Map<string, Map<string, number>>, label: string, key: string): void {
  let t = tally.get(label);
  if (!t) tally.set(label, (t = new Map()));
  t.set(key, (t.get(key) ?? 0) + 1);
}
