import { type Observable, type SchedulerLike, asyncScheduler, debounceTime, filter, groupBy, map, merge, mergeMap } from "rxjs";
import type { AverageState } from "../../machines/latencyAverage.js";
import type { AppliedReport } from "../admission/Admissions.js";
import { timeWeightedAverage } from "./timeWeightedAverage.js";

/** New latency averages of one model. */
export interface LatencyUpdate {
  model: string;
  ttft?: AverageState;
  itl?: AverageState;
}

/** A model's group closes after this many time constants without reports (its average is ~e^-20 of its last value by then). */
const IDLE_TAUS = 20;

/**
 * The load-shedding averages: per model, the time-weighted moving averages of
 * TTFT and ITL from reports, with decay ticks while no reports come. Only models
 * whose policy has `latency` are averaged (`tauFor` returns their time constant).
 */
export function latencyAverages(
  reports$: Observable<AppliedReport>,
  tauFor: (model: string) => number | undefined,
  scheduler: SchedulerLike = asyncScheduler,
): Observable<LatencyUpdate> {
  return reports$.pipe(
    filter((r) => (r.ttftMs !== undefined || r.itlMs !== undefined) && tauFor(r.model) !== undefined),
    groupBy((r) => r.model, {
      duration: (g) => g.pipe(debounceTime((tauFor(g.key) ?? 15_000) * IDLE_TAUS, scheduler)),
    }),
    mergeMap((group) => {
      const model = group.key;
      const tauMs = tauFor(model) ?? 15_000;
      const series = (pick: (r: AppliedReport) => number | undefined) =>
        group.pipe(
          filter((r) => pick(r) !== undefined),
          map((r) => ({ at: r.at, value: pick(r)! })),
          timeWeightedAverage({ tauMs }, scheduler),
        );
      return merge(
        series((r) => r.ttftMs).pipe(map((p): LatencyUpdate => ({ model, ttft: p.state }))),
        series((r) => r.itlMs).pipe(map((p): LatencyUpdate => ({ model, itl: p.state }))),
      );
    }),
  );
}
