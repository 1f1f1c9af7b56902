/**
 * An RxJS scheduler on a {@link ManualClock}: `now()` is the clock's time and
 * `schedule()` arms the clock's timers, so operators such as `debounceTime` and
 * the decay ticks of `timeWeightedAverage` run in virtual time, fired by
 * `clock.advance()`. (src/ has no such adapter; the service takes a SchedulerLike
 * and defaults to `asyncScheduler`.)
 */
import { Subscription, type SchedulerAction, type SchedulerLike } from "rxjs";
import type { ManualClock } from "../../src/clock.js";

class ManualAction<T> extends Subscription implements SchedulerAction<T> {
  private handle: unknown = undefined;

  constructor(
    private readonly clock: ManualClock,
    private readonly work: (this: SchedulerAction<T>, state?: T) => void,
  ) {
    super(() => this.cancel());
  }

  private cancel(): void {
    if (this.handle !== undefined) this.clock.clearTimeout(this.handle);
    this.handle = undefined;
  }

  schedule(state?: T, delay = 0): Subscription {
    if (this.closed) return this;
    this.cancel();
    this.handle = this.clock.setTimeout(() => {
      this.handle = undefined;
      if (this.closed) return;
      this.work.call(this, state);
      // Like rxjs's AsyncAction: a run that did not reschedule itself is over.
      if (this.handle === undefined) this.unsubscribe();
    }, delay);
    return this;
  }
}

/** A SchedulerLike whose time and timers are those of `clock`. */
export function manualScheduler(clock: ManualClock): SchedulerLike {
  return {
    now: () => clock.now(),
    schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay = 0, state?: T): Subscription {
      return new ManualAction<T>(clock, work).schedule(state, delay);
    },
  } as SchedulerLike;
}
