/** A cancellable wait on an injected clock, and the clock the client waits on by default. */
import type { Clock } from "../clock.js";

/**
 * Wall-clock time with ordinary (ref'd) timers. The service's `systemClock` unrefs its
 * timers; a client wait must not: a caller awaiting a retry that the connection's close
 * left as the only pending work would see its process exit with the promise unsettled
 * (its `finally` never run), instead of the retry failing `unavailable`.
 */
export const waitingClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Resolve after `ms` on `clock`; reject with the signal's reason if it aborts first (the timer is cleared). */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clock.clearTimeout(handle);
      reject(signal!.reason);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
