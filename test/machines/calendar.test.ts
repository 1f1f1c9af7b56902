import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { addPeriod, calendarPeriodStart, currentPeriodStart, nextReset } from "../../machines/calendar.js";
import type { BudgetPolicy, CalendarPeriod } from "../../machines/policy.js";

const H = 3_600_000;
const D = 86_400_000;
const W = 7 * D;
const iso = (s: string): number => Date.parse(s);
const str = (t: number): string => new Date(t).toISOString();
const PERIODS: CalendarPeriod[] = ["hour", "day", "week", "month"];

describe("calendarPeriodStart", () => {
  it("floors to the hour", () => {
    expect(str(calendarPeriodStart("hour", iso("2026-03-15T13:45:12.345Z")))).toBe("2026-03-15T13:00:00.000Z");
    expect(str(calendarPeriodStart("hour", iso("2026-03-15T13:00:00.000Z")))).toBe("2026-03-15T13:00:00.000Z");
    expect(str(calendarPeriodStart("hour", iso("2026-03-15T13:59:59.999Z")))).toBe("2026-03-15T13:00:00.000Z");
  });

  it("floors to midnight UTC", () => {
    expect(str(calendarPeriodStart("day", iso("2026-03-15T23:59:59.999Z")))).toBe("2026-03-15T00:00:00.000Z");
    expect(str(calendarPeriodStart("day", iso("2026-03-16T00:00:00.000Z")))).toBe("2026-03-16T00:00:00.000Z");
  });

  it("floors to Monday 00:00 UTC (ISO week), across a Sunday→Monday crossing", () => {
    // 2026-03-15 is a Sunday, 2026-03-16 a Monday.
    const sundayLate = iso("2026-03-15T23:59:59.999Z");
    const mondayMidnight = iso("2026-03-16T00:00:00.000Z");
    expect(str(calendarPeriodStart("week", sundayLate))).toBe("2026-03-09T00:00:00.000Z");
    expect(str(calendarPeriodStart("week", mondayMidnight))).toBe("2026-03-16T00:00:00.000Z");
    expect(str(calendarPeriodStart("week", iso("2026-03-18T10:00:00Z")))).toBe("2026-03-16T00:00:00.000Z");
    // Week spanning a year change: Thu 2026-01-01 belongs to the week of Mon 2025-12-29.
    expect(str(calendarPeriodStart("week", iso("2026-01-01T12:00:00Z")))).toBe("2025-12-29T00:00:00.000Z");
    // Before the epoch (1970-01-01 was a Thursday).
    expect(str(calendarPeriodStart("week", 0))).toBe("1969-12-29T00:00:00.000Z");
  });

  it("floors to the 1st of the month", () => {
    expect(str(calendarPeriodStart("month", iso("2026-01-31T23:59:59.999Z")))).toBe("2026-01-01T00:00:00.000Z");
    expect(str(calendarPeriodStart("month", iso("2028-02-29T12:00:00Z")))).toBe("2028-02-01T00:00:00.000Z");
    expect(str(calendarPeriodStart("month", iso("2026-12-31T23:59:59.999Z")))).toBe("2026-12-01T00:00:00.000Z");
    expect(str(calendarPeriodStart("month", -1))).toBe("1969-12-01T00:00:00.000Z");
  });
});

describe("addPeriod", () => {
  it("adds fixed hours, days and weeks", () => {
    const t = iso("2026-03-15T13:45:00Z");
    expect(addPeriod("hour", t)).toBe(t + H);
    expect(addPeriod("day", t)).toBe(t + D);
    expect(addPeriod("week", t)).toBe(t + W);
  });

  it("adds a month, clamping to the last day", () => {
    expect(str(addPeriod("month", iso("2026-01-31T10:20:30.400Z")))).toBe("2026-02-28T10:20:30.400Z");
    expect(str(addPeriod("month", iso("2028-01-31T00:00:00Z")))).toBe("2028-02-29T00:00:00.000Z");
    expect(str(addPeriod("month", iso("2028-01-29T00:00:00Z")))).toBe("2028-02-29T00:00:00.000Z");
    expect(str(addPeriod("month", iso("2026-03-31T08:00:00Z")))).toBe("2026-04-30T08:00:00.000Z");
    expect(str(addPeriod("month", iso("2026-01-15T08:00:00Z")))).toBe("2026-02-15T08:00:00.000Z");
    // 2100 is not a leap year.
    expect(str(addPeriod("month", iso("2100-01-30T00:00:00Z")))).toBe("2100-02-28T00:00:00.000Z");
  });

  it("rolls December into January of the next year", () => {
    expect(str(addPeriod("month", iso("2026-12-31T23:00:00Z")))).toBe("2027-01-31T23:00:00.000Z");
    expect(str(addPeriod("month", iso("2026-12-01T00:00:00Z")))).toBe("2027-01-01T00:00:00.000Z");
  });

  it("handles years before 100 without Date.UTC's 19xx mapping", () => {
    const t = new Date(0);
    t.setUTCFullYear(50, 11, 31);
    expect(new Date(addPeriod("month", t.getTime())).getUTCFullYear()).toBe(51);
    expect(new Date(addPeriod("month", t.getTime())).getUTCMonth()).toBe(0);
  });
});

describe("nextReset", () => {
  it("calendar periods end at the next boundary", () => {
    const t = iso("2026-03-15T13:45:00Z"); // a Sunday
    expect(str(nextReset({ limit: 1, period: "hour", calendar: true }, t)!)).toBe("2026-03-15T14:00:00.000Z");
    expect(str(nextReset({ limit: 1, period: "day", calendar: true }, t)!)).toBe("2026-03-16T00:00:00.000Z");
    expect(str(nextReset({ limit: 1, period: "week", calendar: true }, t)!)).toBe("2026-03-16T00:00:00.000Z");
    expect(str(nextReset({ limit: 1, period: "month", calendar: true }, t)!)).toBe("2026-04-01T00:00:00.000Z");
    expect(str(nextReset({ limit: 1, period: "month", calendar: true }, iso("2026-12-01T00:00:00Z"))!)).toBe(
      "2027-01-01T00:00:00.000Z",
    );
    // A start on a boundary ends one whole period later.
    expect(str(nextReset({ limit: 1, period: "week", calendar: true }, iso("2026-03-16T00:00:00Z"))!)).toBe(
      "2026-03-23T00:00:00.000Z",
    );
  });

  it("rolling periods end one period after the start", () => {
    const t = iso("2026-01-31T13:45:00Z");
    expect(nextReset({ limit: 1, period: "day" }, t)).toBe(t + D);
    expect(nextReset({ limit: 1, period: "week", calendar: false }, t)).toBe(t + W);
    expect(str(nextReset({ limit: 1, period: "month" }, t)!)).toBe("2026-02-28T13:45:00.000Z");
    expect(nextReset({ limit: 1, periodMs: 90_000 }, t)).toBe(t + 90_000);
  });

  it("no period: never", () => {
    expect(nextReset({ limit: 1 }, 123)).toBeNull();
    expect(nextReset({ limit: 1, periodMs: 0 }, 123)).toBeNull();
  });

  it("period takes precedence over periodMs", () => {
    expect(nextReset({ limit: 1, period: "hour", periodMs: 5 }, 0)).toBe(H);
  });
});

describe("currentPeriodStart", () => {
  it("calendar: the calendar floor, whatever the previous start", () => {
    const p: BudgetPolicy = { limit: 1, period: "day", calendar: true };
    const now = iso("2026-03-15T13:45:00Z");
    expect(str(currentPeriodStart(p, now))).toBe("2026-03-15T00:00:00.000Z");
    expect(str(currentPeriodStart(p, now, iso("2026-03-01T00:00:00Z")))).toBe("2026-03-15T00:00:00.000Z");
  });

  it("rolling periodMs: the latest grid point <= now, anchored at the previous start", () => {
    const p: BudgetPolicy = { limit: 1, periodMs: 1000 };
    expect(currentPeriodStart(p, 5000)).toBe(5000);
    expect(currentPeriodStart(p, 5000, 5000)).toBe(5000);
    expect(currentPeriodStart(p, 5999, 5000)).toBe(5000);
    expect(currentPeriodStart(p, 6000, 5000)).toBe(6000);
    expect(currentPeriodStart(p, 9_876, 5_000)).toBe(9_000);
    expect(currentPeriodStart(p, 1e12 + 123, 7)).toBe(1e12 + 7);
    // Clock went back: stay at the previous start.
    expect(currentPeriodStart(p, 4000, 5000)).toBe(5000);
  });

  it("rolling named period: fixed steps for hours/days/weeks, addPeriod steps for months", () => {
    const start = iso("2026-01-31T10:00:00Z");
    expect(currentPeriodStart({ limit: 1, period: "day" }, start + 3 * D + 5, start)).toBe(start + 3 * D);
    expect(currentPeriodStart({ limit: 1, period: "week" }, start + 3 * W - 1, start)).toBe(start + 2 * W);
    const month: BudgetPolicy = { limit: 1, period: "month" };
    // Jan 31 → Feb 28 → Mar 28 → Apr 28 (clamping drifts, consistent with nextReset).
    expect(str(currentPeriodStart(month, iso("2026-02-28T09:59:59Z"), start))).toBe("2026-01-31T10:00:00.000Z");
    expect(str(currentPeriodStart(month, iso("2026-02-28T10:00:00Z"), start))).toBe("2026-02-28T10:00:00.000Z");
    expect(str(currentPeriodStart(month, iso("2026-04-15T00:00:00Z"), start))).toBe("2026-03-28T10:00:00.000Z");
    expect(str(currentPeriodStart(month, iso("2027-01-30T00:00:00Z"), start))).toBe("2027-01-28T10:00:00.000Z");
  });

  it("no period: the previous start, or now", () => {
    expect(currentPeriodStart({ limit: 1 }, 9000, 1000)).toBe(1000);
    expect(currentPeriodStart({ limit: 1 }, 9000)).toBe(9000);
  });
});

// Times from 1900 to 2200.
const arbTime = fc.integer({ min: Date.UTC(1900, 0, 1), max: Date.UTC(2200, 0, 1) });
const arbPeriod = fc.constantFrom(...PERIODS);

function isAligned(period: CalendarPeriod, t: number): boolean {
  const d = new Date(t);
  const midnight = d.getUTCHours() === 0 && d.getUTCMinutes() === 0 && d.getUTCSeconds() === 0 && d.getUTCMilliseconds() === 0;
  switch (period) {
    case "hour":
      return d.getUTCMinutes() === 0 && d.getUTCSeconds() === 0 && d.getUTCMilliseconds() === 0;
    case "day":
      return midnight;
    case "week":
      return midnight && d.getUTCDay() === 1;
    case "month":
      return midnight && d.getUTCDate() === 1;
  }
}

describe("properties", () => {
  it("calendarPeriodStart(t) <= t < next boundary, both aligned, nothing aligned in between", () => {
    fc.assert(
      fc.property(arbTime, arbPeriod, (t, period) => {
        const start = calendarPeriodStart(period, t);
        const next = nextReset({ limit: 1, period, calendar: true }, start)!;
        expect(start).toBeLessThanOrEqual(t);
        expect(t).toBeLessThan(next);
        expect(isAligned(period, start)).toBe(true);
        expect(isAligned(period, next)).toBe(true);
        expect(calendarPeriodStart(period, start)).toBe(start);
        expect(calendarPeriodStart(period, next - 1)).toBe(start);
        expect(calendarPeriodStart(period, next)).toBe(next);
        expect(next).toBe(addPeriod(period, start));
      }),
      { numRuns: 2000 },
    );
  });

  it("addPeriod(month) is the same day next month, clamped, same time of day", () => {
    fc.assert(
      fc.property(arbTime, (t) => {
        const a = new Date(t);
        const b = new Date(addPeriod("month", t));
        const ny = a.getUTCMonth() === 11 ? a.getUTCFullYear() + 1 : a.getUTCFullYear();
        const nm = (a.getUTCMonth() + 1) % 12;
        const lastDay = new Date(Date.UTC(ny, nm + 1, 0)).getUTCDate();
        expect(b.getUTCFullYear()).toBe(ny);
        expect(b.getUTCMonth()).toBe(nm);
        expect(b.getUTCDate()).toBe(Math.min(a.getUTCDate(), lastDay));
        const tod = (x: number): number => ((x % D) + D) % D;
        expect(tod(b.getTime())).toBe(tod(t));
      }),
      { numRuns: 1000 },
    );
  });

  it("rolling currentPeriodStart lies on the grid and its period contains now", () => {
    const arbRolling: fc.Arbitrary<BudgetPolicy> = fc.oneof(
      fc.integer({ min: 1, max: 10 * D }).map((periodMs) => ({ limit: 1, periodMs })),
      arbPeriod.map((period) => ({ limit: 1, period })),
    );
    fc.assert(
      fc.property(arbRolling, arbTime, fc.integer({ min: 0, max: 3 * 365 * D }), (policy, prev, gap) => {
        const now = prev + gap;
        const start = currentPeriodStart(policy, now, prev);
        expect(start).toBeGreaterThanOrEqual(prev);
        expect(start).toBeLessThanOrEqual(now);
        expect(nextReset(policy, start)!).toBeGreaterThan(now);
        // On the grid: stepping from prev reaches start exactly (fixed lengths: divisibility).
        if (policy.periodMs !== undefined) expect((start - prev) % policy.periodMs).toBe(0);
        else if (policy.period !== "month") expect((start - prev) % nextReset(policy, 0)!).toBe(0);
        else {
          let x = prev;
          while (x < start) x = addPeriod("month", x);
          expect(x).toBe(start);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
