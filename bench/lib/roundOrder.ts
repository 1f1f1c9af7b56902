/**
 * The order of one round's measured runs. This machine's speed drifts over
 * minutes (the same sluice build and load gave 8.5k and 15.5k single
 * admissions/s a few minutes apart), so series that a goal compares — sluice
 * against the echo, the client against the Redis peer — must run seconds apart,
 * not a whole pass over every level apart.
 */
import type { Series } from "./series.js";

/** One measured run: a series at a level, after a pause. */
export interface Step {
  series: Series;
  level: number;
  /** Wait this long before starting it, ms. */
  pauseMs: number;
}

/**
 * Level by level: the network series first, then the in-process ones. Within a level the
 * series that do not load sluice come first, then sluice's, each in the order of the
 * series its ratio refers to, so that a compared pair is one run apart. A run that loaded
 * sluice leaves leases behind that expire up to a lease lifetime later, and sluice settles
 * them then: such a step followed by one of another target gets a pause of `settleMs`, so
 * that the settling runs before the next measurement and not beside it. `afterSluice`: the
 * step before the first one loaded sluice (a previous round's last step).
 */
export function roundOrder(series: readonly Series[], settleMs: number, afterSluice = false): Step[] {
  const steps: Step[] = [];
  let prevLoadsSluice = afterSluice;
  for (const program of ["load", "inproc"] as const) {
    const group = series.filter((s) => s.program === program);
    const levels = [...new Set(group.flatMap((s) => s.levels))].sort((a, b) => a - b);
    for (const level of levels) {
      const here = group.filter((s) => s.levels.includes(level));
      const others = here.filter((x) => !loadsSluice(x));
      // Sluice's series in the order of the references they are compared to (sluice after the echo, the client
      // after the peer), then the rest: each pair one run apart.
      const rank = (x: Series): number => {
        const i = others.findIndex((o) => o.id === x.ratio?.series);
        return i < 0 ? others.length : i;
      };
      const sluices = here.filter(loadsSluice).sort((a, b) => rank(a) - rank(b));
      for (const s of [...others, ...sluices]) {
        const loads = loadsSluice(s);
        steps.push({ series: s, level, pauseMs: prevLoadsSluice && !loads ? settleMs : 0 });
        prevLoadsSluice = loads;
      }
    }
  }
  return steps;
}

/** Does a run of this series put load on sluice? */
export function loadsSluice(s: Series): boolean {
  return s.needs.includes("sluice");
}
