import { describe, expect, it } from "vitest";
import { TestScheduler } from "rxjs/testing";
import type { SchedulerAction, SchedulerLike } from "rxjs";
import { timeWeightedAverage } from "../../src/pipelines/timeWeightedAverage.js";
import type { AveragePoint, Sample } from "../../src/pipelines/timeWeightedAverage.js";
import { averageAdd, averageInit, averageValue } from "../../machines/latencyAverage.js";
import type { AverageState } from "../../machines/latencyAverage.js";

const TAU = 1_000;

/** Floating point: compare numbers to 9 decimals, everything else exactly. */
function rounded(v: unknown): unknown {
  if (typeof v === "number") return Math.round(v * 1e9) / 1e9;
  if (Array.isArray(v)) return v.map(rounded);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, rounded(x)]));
  }
  return v;
}

function testScheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => expect(rounded(actual)).toEqual(rounded(expected)));
}

/** Wraps a scheduler to count how many scheduled ticks actually run. */
function counting(inner: SchedulerLike): { scheduler: SchedulerLike; runs: () => number } {
  let runs = 0;
  const scheduler = {
    now: () => inner.now(),
    schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay?: number, state?: T) {
      return inner.schedule<T>(
        function (this: SchedulerAction<T>, st?: T) {
          runs++;
          work.call(this, st);
        },
        delay,
        state,
      );
    },
  } as SchedulerLike;
  return { scheduler, runs: () => runs };
}

const sample = (at: number, value: number): Sample => ({ at, value });

/** The point emitted for a sample or tick at `at` given the state after the last sample. */
const point = (at: number, state: AverageState): AveragePoint => ({ at, value: averageValue(state, at, TAU), state });

/** States after each of a series of samples. */
function states(samples: Sample[]): AverageState[] {
  const out: AverageState[] = [];
  let a: AverageState | undefined;
  for (const s of samples) {
    a = averageAdd(a ?? averageInit(s.at), s.value, s.at, TAU);
    out.push(a);
  }
  return out;
}

describe("timeWeightedAverage", () => {
  it("emits the average after every sample", () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const samples = [sample(0, 100), sample(50, 200), sample(100, 30)];
      const [s0, s1, s2] = states(samples);
      const source = cold<Sample>("a 49ms b 49ms c|", { a: samples[0], b: samples[1], c: samples[2] });
      expectObservable(source.pipe(timeWeightedAverage({ tauMs: TAU, decayEveryMs: 100 }))).toBe(
        "a 49ms b 49ms c|",
        { a: point(0, s0), b: point(50, s1), c: point(100, s2) },
      );
    });
    // Literal check of the first two: 100, then (100·e^-0.05 + 200) / (e^-0.05 + 1) = 151.249739…
    const [, s1] = states([sample(0, 100), sample(50, 200)]);
    expect(averageValue(s1, 50, TAU)).toBeCloseTo(151.249739, 5);
  });

  it("ticks every decayEveryMs while idle, down to the first value below floor", () => {
    const sched = testScheduler();
    const { scheduler, runs } = counting(sched);
    sched.run(({ cold, expectObservable }) => {
      const [s0] = states([sample(0, 100)]);
      const source = cold<Sample>("a 999ms |", { a: sample(0, 100) });
      // 100·e^-t/1000 falls below 50 after t = 693 ms: the tick at 700 (49.66) is the last.
      expectObservable(source.pipe(timeWeightedAverage({ tauMs: TAU, decayEveryMs: 100, floor: 50 }, scheduler))).toBe(
        "a 99ms b 99ms c 99ms d 99ms e 99ms f 99ms g 99ms h 299ms |",
        {
          a: point(0, s0),
          b: point(100, s0),
          c: point(200, s0),
          d: point(300, s0),
          e: point(400, s0),
          f: point(500, s0),
          g: point(600, s0),
          h: point(700, s0),
        },
      );
    });
    expect(runs()).toBe(7);
    expect(averageValue(states([sample(0, 100)])[0], 700, TAU)).toBeCloseTo(49.658530, 5);
  });

  it("defaults decayEveryMs to tauMs / 10 and the scheduler to asyncScheduler", () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const [s0] = states([sample(0, 100)]);
      const source = cold<Sample>("a 250ms |", { a: sample(0, 100) });
      expectObservable(source.pipe(timeWeightedAverage({ tauMs: TAU }))).toBe("a 99ms b 99ms c 50ms |", {
        a: point(0, s0),
        b: point(100, s0),
        c: point(200, s0),
      });
    });
  });

  it("a sample restarts the tick period", () => {
    testScheduler().run(({ cold, expectObservable }) => {
      const samples = [sample(0, 100), sample(150, 20)];
      const [s0, s1] = states(samples);
      const source = cold<Sample>("a 149ms b 220ms |", { a: samples[0], b: samples[1] });
      expectObservable(source.pipe(timeWeightedAverage({ tauMs: TAU, decayEveryMs: 100 }))).toBe(
        "a 99ms t 49ms b 99ms u 99ms v 20ms |",
        { a: point(0, s0), t: point(100, s0), b: point(150, s1), u: point(250, s1), v: point(350, s1) },
      );
    });
  });

  it("a sample already below floor starts no ticks", () => {
    const sched = testScheduler();
    const { scheduler, runs } = counting(sched);
    sched.run(({ cold, expectObservable }) => {
      const [s0] = states([sample(0, 0)]);
      const source = cold<Sample>("a 500ms |", { a: sample(0, 0) });
      expectObservable(source.pipe(timeWeightedAverage({ tauMs: TAU, decayEveryMs: 100 }, scheduler))).toBe(
        "a 500ms |",
        { a: point(0, s0) },
      );
    });
    expect(runs()).toBe(0);
  });

  it("completes when the source completes, and ticks no more", () => {
    const sched = testScheduler();
    const { scheduler, runs } = counting(sched);
    sched.run(({ cold, expectObservable, expectSubscriptions }) => {
      const [s0] = states([sample(0, 100)]);
      const source = cold<Sample>("a 250ms |", { a: sample(0, 100) });
      expectObservable(source.pipe(timeWeightedAverage({ tauMs: TAU, decayEveryMs: 100 }, scheduler))).toBe(
        "a 99ms b 99ms c 50ms |",
        { a: point(0, s0), b: point(100, s0), c: point(200, s0) },
      );
      expectSubscriptions(source.subscriptions).toBe("^ 250ms !");
    });
    // Left running, the ticks would go on until ~11.6 s (floor 0.001).
    expect(runs()).toBe(2);
  });

  it("passes errors through, and ticks no more", () => {
    const sched = testScheduler();
    const { scheduler, runs } = counting(sched);
    const boom = new Error("boom");
    sched.run(({ cold, expectObservable }) => {
      const [s0] = states([sample(0, 100)]);
      const source = cold<Sample>("a 150ms #", { a: sample(0, 100) }, boom);
      expectObservable(source.pipe(timeWeightedAverage({ tauMs: TAU, decayEveryMs: 100 }, scheduler))).toBe(
        "a 99ms b 50ms #",
        { a: point(0, s0), b: point(100, s0) },
        boom,
      );
    });
    expect(runs()).toBe(1);
  });

  it("completes at once on an empty source", () => {
    testScheduler().run(({ cold, expectObservable }) => {
      expectObservable(cold<Sample>("|").pipe(timeWeightedAverage({ tauMs: TAU }))).toBe("|");
    });
  });

  it("emits nothing and ticks never on a source that never emits", () => {
    const sched = testScheduler();
    const { scheduler, runs } = counting(sched);
    sched.run(({ cold, expectObservable }) => {
      expectObservable(cold<Sample>("-").pipe(timeWeightedAverage({ tauMs: TAU }, scheduler)), "^ 5s !").toBe("-");
    });
    expect(runs()).toBe(0);
  });

  it("early unsubscribe tears down the ticks and the source subscription", () => {
    const sched = testScheduler();
    const { scheduler, runs } = counting(sched);
    sched.run(({ hot, expectObservable, expectSubscriptions }) => {
      const [s0] = states([sample(0, 100)]);
      const source = hot<Sample>("a", { a: sample(0, 100) });
      expectObservable(
        source.pipe(timeWeightedAverage({ tauMs: TAU, decayEveryMs: 100 }, scheduler)),
        "^ 250ms !",
      ).toBe("a 99ms b 99ms c", { a: point(0, s0), b: point(100, s0), c: point(200, s0) });
      expectSubscriptions(source.subscriptions).toBe("^ 250ms !");
    });
    expect(runs()).toBe(2);
  });

  it("a downstream that unsubscribes from within a tick stops the ticking", () => {
    const sched = testScheduler();
    const { scheduler, runs } = counting(sched);
    const seen: number[] = [];
    sched.run(({ cold }) => {
      const sub = cold<Sample>("a", { a: sample(0, 100) })
        .pipe(timeWeightedAverage({ tauMs: TAU, decayEveryMs: 100 }, scheduler))
        .subscribe((p) => {
          seen.push(p.at);
          if (p.at === 300) sub.unsubscribe();
        });
    });
    expect(seen).toEqual([0, 100, 200, 300]);
    expect(runs()).toBe(3);
  });

  it("rejects unusable options at once", () => {
    expect(() => timeWeightedAverage({ tauMs: 0 })).toThrow(RangeError);
    expect(() => timeWeightedAverage({ tauMs: 1_000, decayEveryMs: 0 })).toThrow(/decayEveryMs/);
    expect(() => timeWeightedAverage({ tauMs: Number.NaN })).toThrow(/tauMs/);
  });
});
