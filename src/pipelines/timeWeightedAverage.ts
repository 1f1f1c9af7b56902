/**
 * RxJS operator over the pure time-weighted average of `machines/latencyAverage.ts`:
 * turns latency samples into a stream of averages that keeps decaying (and
 * emitting) while reports have stopped, so a model shed for slowness visibly
 * recovers without anyone having to send it traffic.
 */
import { Observable, asyncScheduler } from "rxjs";
import type { OperatorFunction, SchedulerLike, Subscription } from "rxjs";
import { averageAdd, averageInit, averageValue } from "../../machines/latencyAverage.js";
import type { AverageState } from "../../machines/latencyAverage.js";

/** A latency sample. */
export interface Sample {
  /** When it was taken, ms (the same clock as the scheduler's `now()`). */
  at: number;
  /** The latency, ms. */
  value: number;
}

/** The average at a point in time. */
export interface AveragePoint {
  /** When the average was read: the sample's `at`, or the scheduler's `now()` for a decay tick. */
  at: number;
  /** The average read at `at`. */
  value: number;
  /** The average's state as of the last sample (the input to {@link averageValue}). */
  state: AverageState;
}

/** Options of {@link timeWeightedAverage}. */
export interface TimeWeightedAverageOptions {
  /** Time constant of the average, ms. Must be > 0. */
  tauMs: number;
  /** Spacing of the decay ticks while no samples come, ms. Default `tauMs / 10`. */
  decayEveryMs?: number;
  /** Ticking stops once the value is below this, until the next sample. Default 0.001. */
  floor?: number;
}

/** Default `floor` of {@link timeWeightedAverage}. */
export const DEFAULT_AVERAGE_FLOOR = 0.001;

/**
 * Emits the time-weighted average after every sample, and every `decayEveryMs`
 * while no samples come (counted from the last sample). The tick that reads
 * below `floor` is still emitted, so downstream sees the drop; then ticking
 * pauses until the next sample.
 *
 * Sample times come from the samples, tick times from `scheduler.now()`; both
 * must be on the same clock. Completes when the source completes, errors pass
 * through, and the tick timer is cleared on complete, error and unsubscribe.
 *
 * @param scheduler schedules the decay ticks. Default `asyncScheduler`.
 * @throws RangeError when `tauMs`, `decayEveryMs` or `floor` is not a usable number.
 */
export function timeWeightedAverage(
  opts: TimeWeightedAverageOptions,
  scheduler: SchedulerLike = asyncScheduler,
): OperatorFunction<Sample, AveragePoint> {
  const { tauMs } = opts;
  const everyMs = opts.decayEveryMs ?? tauMs / 10;
  const floor = opts.floor ?? DEFAULT_AVERAGE_FLOOR;
  // Validated once, at the edge: a zero period would spin the scheduler.
  if (!(tauMs > 0) || !Number.isFinite(tauMs)) throw new RangeError(`tauMs: expected a positive number, got ${tauMs}`);
  if (!(everyMs > 0) || !Number.isFinite(everyMs)) {
    throw new RangeError(`decayEveryMs: expected a positive number, got ${opts.decayEveryMs}`);
  }
  if (Number.isNaN(floor)) throw new RangeError(`floor: expected a number, got ${floor}`);

  return (source) =>
    new Observable<AveragePoint>((subscriber) => {
      let state: AverageState | undefined;
      let ticker: Subscription | undefined;

      const stopTicking = () => {
        ticker?.unsubscribe();
        ticker = undefined;
      };

      const sub = source.subscribe({
        next: (sample) => {
          // A sample restarts the tick period: ticks only fill silences.
          stopTicking();
          const current = averageAdd(state ?? averageInit(sample.at), sample.value, sample.at, tauMs);
          state = current;
          const value = averageValue(current, sample.at, tauMs);
          subscriber.next({ at: sample.at, value, state: current });
          if (value < floor || subscriber.closed) return;
          ticker = scheduler.schedule(function () {
            const at = scheduler.now();
            const v = averageValue(current, at, tauMs);
            subscriber.next({ at, value: v, state: current });
            // Rescheduling the same action, as rxjs `interval` does, keeps one
            // handle to cancel; not rescheduling ends the ticks.
            if (v >= floor && !subscriber.closed) this.schedule(undefined, everyMs);
            else ticker = undefined;
          }, everyMs);
        },
        error: (err: unknown) => {
          stopTicking();
          subscriber.error(err);
        },
        complete: () => {
          stopTicking();
          subscriber.complete();
        },
      });

      return () => {
        stopTicking();
        sub.unsubscribe();
      };
    });
}
