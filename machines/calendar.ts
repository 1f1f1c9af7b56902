/**
 * Budget period arithmetic: UTC calendar boundaries and rolling periods.
 *
 * Pure functions. Time is always passed in as milliseconds since the epoch
 * (UTC); nothing here reads the clock. UTC has no DST and JavaScript time has no
 * leap seconds, so hours, days and weeks are fixed lengths; only months vary.
 */

import type { BudgetPolicy, CalendarPeriod } from "./policy.js";

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const WEEK_MS = 7 * DAY_MS;
/** 1970-01-01 was a Thursday; the first Monday 00:00 UTC after the epoch is 1970-01-05. */
const FIRST_MONDAY_MS = 4 * DAY_MS;

/** Fixed lengths of the periods that have one (months do not). */
const FIXED_MS: Record<Exclude<CalendarPeriod, "month">, number> = {
  hour: HOUR_MS,
  day: DAY_MS,
  week: WEEK_MS,
};

/** Floor of `t` to a multiple of `step` counted from `origin` (correct for negative `t` too). */
function floorTo(t: number, step: number, origin = 0): number {
  return Math.floor((t - origin) / step) * step + origin;
}

/**
 * Midnight UTC of year `y`, month `m` (0-based, may overflow into neighbouring
 * years), day `d` (may be 0 = last day of the previous month). Unlike `Date.UTC`
 * this does not map years 0..99 to 1900..1999.
 */
function utcMidnight(y: number, m: number, d: number): number {
  const x = new Date(0);
  x.setUTCFullYear(y, m, d);
  return x.getTime();
}

/** Days in month `m` (0-based) of year `y`. */
function daysInMonth(y: number, m: number): number {
  return new Date(utcMidnight(y, m + 1, 0)).getUTCDate();
}

/**
 * The UTC calendar boundary at or before `t`.
 *
 * - `hour`: the top of the hour;
 * - `day`: midnight UTC;
 * - `week`: Monday 00:00 UTC (ISO weeks);
 * - `month`: the 1st of the month, 00:00 UTC.
 *
 * @param period the calendar unit
 * @param t ms since the epoch
 * @returns the start of the calendar period containing `t` (always `<= t`)
 */
export function calendarPeriodStart(period: CalendarPeriod, t: number): number {
  switch (period) {
    case "hour":
      return floorTo(t, HOUR_MS);
    case "day":
      return floorTo(t, DAY_MS);
    case "week":
      return floorTo(t, WEEK_MS, FIRST_MONDAY_MS);
    case "month": {
      const d = new Date(floorTo(t, DAY_MS));
      return utcMidnight(d.getUTCFullYear(), d.getUTCMonth(), 1);
    }
  }
}

/**
 * `t` plus one period.
 *
 * Hours, days and weeks are fixed lengths. A month is the same day of the next
 * month at the same time of day, clamped to that month's last day: Jan 31 →
 * Feb 28 (Feb 29 in a leap year), Mar 31 → Apr 30, Dec 15 → Jan 15 of the next
 * year. Clamping makes repeated months drift: Jan 31 → Feb 28 → Mar 28.
 *
 * @param period the unit to add
 * @param t ms since the epoch
 * @returns a time strictly after `t`
 */
export function addPeriod(period: CalendarPeriod, t: number): number {
  if (period !== "month") return t + FIXED_MS[period];
  const dayStart = floorTo(t, DAY_MS);
  const timeOfDay = t - dayStart;
  const d = new Date(dayStart);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth() + 1; // may be 12: utcMidnight rolls it into January of y + 1
  const ny = m === 12 ? y + 1 : y;
  const nm = m % 12;
  const day = Math.min(d.getUTCDate(), daysInMonth(ny, nm));
  return utcMidnight(ny, nm, day) + timeOfDay;
}

/** How a budget policy's periods are laid out. */
type PeriodSpec =
  | { kind: "calendar"; period: CalendarPeriod }
  | { kind: "rollingMonth" }
  | { kind: "fixed"; ms: number }
  | { kind: "none" };

/**
 * `period` wins over `periodMs` when a policy has both (the schema should refuse
 * that). A `periodMs` that is not a positive finite number counts as no period.
 */
function periodSpec(policy: BudgetPolicy): PeriodSpec {
  if (policy.period !== undefined) {
    if (policy.calendar === true) return { kind: "calendar", period: policy.period };
    if (policy.period === "month") return { kind: "rollingMonth" };
    return { kind: "fixed", ms: FIXED_MS[policy.period] };
  }
  const ms = policy.periodMs;
  if (ms !== undefined && Number.isFinite(ms) && ms > 0) return { kind: "fixed", ms };
  return { kind: "none" };
}

/**
 * When the budget period that began at `periodStart` ends (the next reset).
 *
 * - calendar `period`: the next calendar boundary after `periodStart`;
 * - rolling `period` (`calendar` false or absent): `addPeriod(period, periodStart)`;
 * - `periodMs`: `periodStart + periodMs`;
 * - no period: `null`, the budget never resets.
 *
 * `period` takes precedence over `periodMs` if a policy has both; a `periodMs`
 * that is not a positive finite number is treated as no period.
 *
 * @param policy the budget policy
 * @param periodStart start of the period, ms since the epoch
 * @returns the end of the period (exclusive; strictly after `periodStart`), or `null`
 */
export function nextReset(policy: BudgetPolicy, periodStart: number): number | null {
  const spec = periodSpec(policy);
  switch (spec.kind) {
    case "calendar":
      return addPeriod(spec.period, calendarPeriodStart(spec.period, periodStart));
    case "rollingMonth":
      return addPeriod("month", periodStart);
    case "fixed":
      return periodStart + spec.ms;
    case "none":
      return null;
  }
}

/**
 * The start of the budget period containing `now`.
 *
 * - calendar `period`: `calendarPeriodStart(period, now)`; `previousStart` is ignored;
 * - rolling (`period` without `calendar`, or `periodMs`): the latest point of the
 *   grid `previousStart`, `previousStart + 1 period`, … that is `<= now`. Fixed
 *   lengths are computed arithmetically; rolling months step with
 *   {@link addPeriod} from `previousStart` (so they drift like `addPeriod` does,
 *   and always agree with {@link nextReset}). Without `previousStart`: `now`.
 *   If `now < previousStart` (the clock went back): `previousStart`;
 * - no period: `previousStart`, or `now` without one.
 *
 * Invariant (for `now >= previousStart`, or always for calendar periods):
 * `start <= now` and `nextReset(policy, start)` is `null` or `> now`.
 *
 * @param policy the budget policy
 * @param now ms since the epoch
 * @param previousStart the start of an earlier period, the anchor of a rolling grid
 * @returns the start of the current period, ms since the epoch
 */
export function currentPeriodStart(policy: BudgetPolicy, now: number, previousStart?: number): number {
  const spec = periodSpec(policy);
  if (spec.kind === "calendar") return calendarPeriodStart(spec.period, now);
  if (previousStart === undefined) return now;
  if (spec.kind === "none" || now < previousStart) return previousStart;
  if (spec.kind === "fixed") {
    let start = previousStart + Math.floor((now - previousStart) / spec.ms) * spec.ms;
    // Guard against floating-point error at the edges of the division.
    if (start > now) start -= spec.ms;
    else if (start + spec.ms <= now) start += spec.ms;
    return start;
  }
  // Rolling months: at most ~12 iterations per year skipped.
  let start = previousStart;
  for (let next = addPeriod("month", start); next <= now; next = addPeriod("month", start)) start = next;
  return start;
}
