/**
 * The pacing scenario: an upstream with a hidden capacity of C requests/s,
 * enforced as a token bucket, that answers 429 above it; many workers calling it
 * back to back, through sluice's adaptive pacing or with fixed sleeps on 429.
 */
import type { AdaptivePolicy } from "../../machines/policy.js";
import { type CallRecord, Sim, SimSluice, type Upstream, type UpstreamResult, fixedDelayWorker, sluiceWorker, window } from "./sim.js";

export interface PacingScenario {
  seed: number;
  /** Hidden capacity, requests/s. */
  capacityPerS: number;
  /** Hidden bucket capacity. */
  burst: number;
  workers: number;
  /** Latency of an accepted call, ms, uniform in [lo, hi). */
  okLatencyMs: [number, number];
  /** Latency of a 429, ms. */
  rejectLatencyMs: [number, number];
  /**
   * The upstream's Retry-After on a 429: `none`; `exact`, the time until its bucket
   * has a token; `seconds`, that time rounded up to whole seconds, as the HTTP
   * header carries it.
   */
  retryAfter: "none" | "exact" | "seconds";
  durationMs: number;
  warmupMs: number;
}

export type PacingVariant =
  | { kind: "sluice"; adaptive: AdaptivePolicy }
  | { kind: "fixed"; delayMs: number };

export interface PacingResult {
  label: string;
  /** Successful calls / (C · T) after warm-up. */
  goodput: number;
  /** 429s / all upstream calls after warm-up. */
  share429: number;
  calls: number;
  oks: number;
  r429: number;
  /** sluice only: rejections by reason, admissions, mean delayMs. */
  rejects?: Record<string, number>;
  admits?: number;
  meanDelayMs?: number;
  /** sluice only: the pacing interval at the end, ms. */
  finalIntervalMs?: number;
  events: number;
}

/** The hidden upstream: a token bucket of `burst` refilled at C/s, checked when a call arrives. */
export function tokenBucketUpstream(sim: Sim, sc: PacingScenario, log: CallRecord[]): Upstream {
  const ratePerMs = sc.capacityPerS / 1000;
  let level = sc.burst;
  let at = 0;
  return {
    call(done: (r: UpstreamResult) => void): void {
      const now = sim.t;
      level = Math.min(sc.burst, level + (now - at) * ratePerMs);
      at = now;
      if (level >= 1) {
        level -= 1;
        const latencyMs = sim.uniform(...sc.okLatencyMs);
        log.push({ at: now, ok: true });
        sim.after(latencyMs, () => done({ outcome: "ok", latencyMs }));
      } else {
        const latencyMs = sim.uniform(...sc.rejectLatencyMs);
        const r: UpstreamResult = { outcome: "rate_limited", latencyMs };
        const wait = (1 - level) / ratePerMs;
        if (sc.retryAfter === "exact") r.retryAfterMs = Math.ceil(wait);
        else if (sc.retryAfter === "seconds") r.retryAfterMs = 1000 * Math.ceil(wait / 1000);
        log.push({ at: now, ok: false });
        sim.after(latencyMs, () => done(r));
      }
    },
  };
}

export function runPacing(sc: PacingScenario, variant: PacingVariant, label: string): PacingResult {
  const sim = new Sim(sc.seed);
  const log: CallRecord[] = [];
  const upstream = tokenBucketUpstream(sim, sc, log);
  let sluice: SimSluice | undefined;
  if (variant.kind === "sluice") {
    sluice = new SimSluice(sim, { scopes: { model: { default: { adaptive: variant.adaptive } } } });
    for (let i = 0; i < sc.workers; i++) {
      sluiceWorker(sim, sluice, { key: `w${i}`, model: "m", upstream, startAfterMs: sim.uniform(0, 1000) });
    }
  } else {
    for (let i = 0; i < sc.workers; i++) fixedDelayWorker(sim, { upstream, delayMs: variant.delayMs, startAfterMs: sim.uniform(0, 1000) });
  }
  sim.run(sc.durationMs);

  const after = window(log, sc.warmupMs, sc.durationMs);
  const oks = after.filter((c) => c.ok).length;
  const r429 = after.length - oks;
  const res: PacingResult = {
    label,
    goodput: oks / ((sc.capacityPerS * (sc.durationMs - sc.warmupMs)) / 1000),
    share429: after.length === 0 ? 0 : r429 / after.length,
    calls: after.length,
    oks,
    r429,
    events: sim.events,
  };
  if (sluice) {
    res.rejects = Object.fromEntries(sluice.rejects);
    res.admits = sluice.admits;
    res.meanDelayMs = sluice.admits === 0 ? 0 : sluice.delaySum / sluice.admits;
    res.finalIntervalMs = sluice.registry.context("model:m")?.pacing?.intervalMs ?? 0;
  }
  return res;
}
