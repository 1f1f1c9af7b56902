/**
 * The load-shedding scenario: an upstream whose TTFT grows with the number of
 * calls in flight, driven by many workers through sluice with a TTFT threshold
 * on the model. The latency averages are fed exactly as SluiceService feeds
 * them: `latencyAverages(admissions.reports, tauFor, scheduler)`, each update
 * sent to the model's actor as a `latency` event.
 */
import type { Subscription } from "rxjs";
import { averageValue } from "../../machines/latencyAverage.js";
import type { LatencyPolicy } from "../../machines/policy.js";
import { latencyAverages } from "../../src/pipelines/latencyAverages.js";
import { manualScheduler } from "./manualScheduler.js";
import { type CallRecord, Sim, SimSluice, type Upstream, type UpstreamResult, mean, percentile, sluiceWorker, window } from "./sim.js";

export interface SheddingScenario {
  seed: number;
  /** TTFT with nothing else in flight, ms. */
  baseTtftMs: number;
  /** Extra TTFT per call in flight (the call itself included), ms. */
  perCallMs: number;
  /** Generation time after the first token, ms, uniform in [lo, hi). */
  decodeMs: [number, number];
  /** The TTFT the upstream should stay under, ms. */
  thresholdMs: number;
  workers: number;
  durationMs: number;
  warmupMs: number;
}

export interface SheddingResult {
  label: string;
  /** Largest concurrency whose TTFT is within the threshold. */
  nStar: number;
  /** What the upstream can serve with TTFT within the threshold, calls/s. */
  capacityPerS: number;
  /** Calls/s completed (started after warm-up). */
  throughputPerS: number;
  /** throughputPerS / capacityPerS. */
  goodput: number;
  ttftMean: number;
  ttftP50: number;
  ttftP95: number;
  ttftMax: number;
  /** Share of calls whose TTFT was over the threshold. */
  overShare: number;
  /** Time-average of the calls in flight. */
  meanInFlight: number;
  /** Time-average of sluice's TTFT average (what shedding acts on), sampled every 100 ms. */
  emaMean: number;
  rejects: Record<string, number>;
  admits: number;
  events: number;
}

/** Largest n with base + perCall·n ≤ threshold. */
export function nStarOf(sc: SheddingScenario): number {
  return Math.floor((sc.thresholdMs - sc.baseTtftMs) / sc.perCallMs);
}

/** Calls/s the upstream serves at n*: n* / (TTFT at n* + mean decode time). */
export function capacityOf(sc: SheddingScenario): number {
  const n = nStarOf(sc);
  const serviceMs = sc.baseTtftMs + sc.perCallMs * n + (sc.decodeMs[0] + sc.decodeMs[1]) / 2;
  return (n / serviceMs) * 1000;
}

interface LoadUpstream extends Upstream {
  /** Integral of the calls in flight over time after warm-up, call-ms. */
  inFlightArea(): number;
}

function loadUpstream(sim: Sim, sc: SheddingScenario, log: CallRecord[]): LoadUpstream {
  let inFlight = 0;
  let area = 0;
  let at = 0;
  const account = () => {
    const now = sim.t;
    if (now > sc.warmupMs) area += inFlight * (now - Math.max(at, sc.warmupMs));
    at = now;
  };
  return {
    call(done: (r: UpstreamResult) => void): void {
      account();
      inFlight++;
      const ttftMs = sc.baseTtftMs + sc.perCallMs * inFlight;
      const latencyMs = ttftMs + sim.uniform(...sc.decodeMs);
      log.push({ at: sim.t, ok: true, ttftMs });
      sim.after(latencyMs, () => {
        account();
        inFlight--;
        done({ outcome: "ok", ttftMs, latencyMs });
      });
    },
    inFlightArea: () => {
      account();
      return area;
    },
  };
}

/** Run the scenario; `latency` undefined: no shedding. */
export function runShedding(
  sc: SheddingScenario,
  latency: LatencyPolicy | undefined,
  label: string,
  extra: { jitter?: { min: number; max: number }; model?: Record<string, unknown> } = {},
): SheddingResult {
  const sim = new Sim(sc.seed);
  const log: CallRecord[] = [];
  const upstream = loadUpstream(sim, sc, log);
  const model: Record<string, unknown> = { ...extra.model };
  if (latency) model.latency = latency;
  const policy: Record<string, unknown> = { scopes: { model: { default: model } } };
  if (extra.jitter) policy.jitter = extra.jitter;
  const sluice = new SimSluice(sim, policy);
  const { registry, admissions } = sluice;

  // As SluiceService does: the averages pipeline on the reports, each update to the model's actor.
  const sub: Subscription = latencyAverages(
    admissions.reports,
    (model) => registry.context(`model:${model}`)?.limits.latency?.tauMs,
    manualScheduler(sim.clock),
  ).subscribe((u) => {
    registry.peek(`model:${u.model}`)?.send({ type: "latency", ttft: u.ttft, itl: u.itl, now: sim.clock.now() });
  });

  // Sample sluice's TTFT average (as it reads at the time) every 100 ms after warm-up.
  const ema: number[] = [];
  const sample = (): void => {
    const ctx = registry.context("model:m");
    if (ctx?.ttft && ctx.limits.latency) {
      ema.push(averageValue(ctx.ttft, sim.clock.now(), ctx.limits.latency.tauMs));
    }
    sim.after(100, sample);
  };
  sim.after(sc.warmupMs, sample);

  for (let i = 0; i < sc.workers; i++) {
    sluiceWorker(sim, sluice, { key: `w${i}`, model: "m", upstream, startAfterMs: sim.uniform(0, 1000) });
  }
  sim.run(sc.durationMs);
  sub.unsubscribe();

  const after = window(log, sc.warmupMs, sc.durationMs);
  const ttfts = after.map((c) => c.ttftMs!);
  const seconds = (sc.durationMs - sc.warmupMs) / 1000;
  const capacityPerS = capacityOf(sc);
  const throughputPerS = after.length / seconds;
  return {
    label,
    nStar: nStarOf(sc),
    capacityPerS,
    throughputPerS,
    goodput: throughputPerS / capacityPerS,
    ttftMean: mean(ttfts),
    ttftP50: percentile(ttfts, 50),
    ttftP95: percentile(ttfts, 95),
    ttftMax: Math.max(...ttfts),
    overShare: ttfts.filter((t) => t > sc.thresholdMs).length / ttfts.length,
    meanInFlight: upstream.inFlightArea() / (sc.durationMs - sc.warmupMs),
    emaMean: ema.length ? mean(ema) : Number.NaN,
    rejects: Object.fromEntries(sluice.rejects),
    admits: sluice.admits,
    events: sim.events,
  };
}
