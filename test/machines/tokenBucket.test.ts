import { describe, expect, it } from "vitest";
import { type BucketLimit, resolveLimits } from "../../machines/policy.js";
import {
  bucketAdjust,
  bucketCheck,
  bucketInit,
  bucketLevel,
  bucketRebase,
  bucketRoomInMs,
  bucketTake,
} from "../../machines/tokenBucket.js";

/** 60 requests a minute (one a second), room for 10 at once. */
const rpm: BucketLimit = resolveLimits({ rpm: 60, burst: 10 }).buckets[0]!;
/** 6000 tokens a minute (100 a second), room for 1000 at once. */
const tpm: BucketLimit = resolveLimits({ tpm: 6_000, tpmBurst: 1_000 }).buckets[0]!;
const T0 = Date.UTC(2026, 0, 1);

describe("tokenBucket - resolved limits", () => {
  it("burst defaults to the limit and the rate is limit/period", () => {
    const [b] = resolveLimits({ rpm: 120 }).buckets;
    expect(b).toEqual({ kind: "rpm", limit: 120, burst: 120, ratePerMs: 120 / 60_000, tokens: false });
    expect(rpm).toEqual({ kind: "rpm", limit: 60, burst: 10, ratePerMs: 0.001, tokens: false });
    // `burst` is for request buckets; a token bucket needs its own `tpmBurst`.
    expect(resolveLimits({ tpm: 6_000, burst: 5 }).buckets[0]!.burst).toBe(6_000);
  });
});

describe("tokenBucket - refill", () => {
  it("a fresh bucket is full", () => {
    expect(bucketInit(rpm, T0)).toEqual({ level: 10, at: T0 });
  });

  it("an emptied bucket refills at one unit per second", () => {
    let b = bucketInit(rpm, T0);
    for (let i = 0; i < 10; i++) b = bucketTake(b, rpm, 1, T0);
    expect(bucketLevel(b, rpm, T0)).toBe(0);
    expect(bucketLevel(b, rpm, T0 + 500)).toBeCloseTo(0.5, 12);
    expect(bucketLevel(b, rpm, T0 + 3_000)).toBeCloseTo(3, 12);
  });

  it("refill stops at burst however long the bucket sits idle", () => {
    const b = bucketTake(bucketInit(rpm, T0), rpm, 4, T0);
    expect(bucketLevel(b, rpm, T0 + 4_000)).toBe(10);
    expect(bucketLevel(b, rpm, T0 + 86_400_000)).toBe(10);
  });

  it("a clock going backwards never drains the bucket", () => {
    const b = bucketTake(bucketInit(rpm, T0), rpm, 4, T0);
    expect(bucketLevel(b, rpm, T0 - 10_000)).toBe(6);
  });
});

describe("tokenBucket - check", () => {
  it("admits while the bucket holds the amount, reporting what will remain", () => {
    expect(bucketCheck(bucketInit(tpm, T0), tpm, 400, T0)).toEqual({ ok: true, remaining: 600 });
    expect(bucketCheck(bucketInit(tpm, T0), tpm, 1_000, T0)).toEqual({ ok: true, remaining: 0 });
  });

  it("retryAfterMs is exactly the time the missing units take to refill", () => {
    const b = bucketTake(bucketInit(tpm, T0), tpm, 900, T0); // 100 left
    const v = bucketCheck(b, tpm, 350, T0);
    // 250 missing at 100 a second: 2.5 s.
    expect(v).toEqual({ ok: false, tooLarge: false, remaining: 100, retryAfterMs: 2_500 });
    expect(bucketCheck(b, tpm, 350, T0 + 2_499).ok).toBe(false);
    expect(bucketCheck(b, tpm, 350, T0 + 2_500).ok).toBe(true);
    expect(bucketRoomInMs(b, tpm, 350, T0)).toBe(2_500);
    expect(bucketRoomInMs(b, tpm, 50, T0)).toBe(0);
  });

  it("retryAfterMs rounds up to whole milliseconds, so a retry at that time always fits", () => {
    const odd = resolveLimits({ rpm: 7 }).buckets[0]!; // 7 a minute: one per 8571.43 ms
    let b = bucketInit(odd, T0);
    for (let i = 0; i < 7; i++) b = bucketTake(b, odd, 1, T0);
    const v = bucketCheck(b, odd, 1, T0);
    expect(v.ok).toBe(false);
    const wait = (v as { retryAfterMs: number }).retryAfterMs;
    expect(wait).toBe(8_572);
    expect(bucketCheck(b, odd, 1, T0 + wait - 1).ok).toBe(false);
    expect(bucketCheck(b, odd, 1, T0 + wait).ok).toBe(true);
  });

  it("an amount larger than burst is tooLarge: no wait makes it fit", () => {
    const v = bucketCheck(bucketInit(tpm, T0), tpm, 1_001, T0);
    expect(v).toEqual({ ok: false, tooLarge: true, remaining: 1_000 });
    expect("retryAfterMs" in v).toBe(false);
  });
});

describe("tokenBucket - adjust after the report", () => {
  it("a report above its estimate puts the bucket into debt, paid off by the refill", () => {
    let b = bucketTake(bucketInit(tpm, T0), tpm, 800, T0); // estimate 800, 200 left
    b = bucketAdjust(b, tpm, 700, T0 + 1_000); // actual 1500: 700 more; the refill had brought 100
    expect(b).toEqual({ level: -400, at: T0 + 1_000 });
    // 400 of debt plus the 100 asked for: 5 s.
    expect(bucketCheck(b, tpm, 100, T0 + 1_000)).toEqual({ ok: false, tooLarge: false, remaining: 0, retryAfterMs: 5_000 });
    expect(bucketCheck(b, tpm, 100, T0 + 6_000).ok).toBe(true);
  });

  it("an overestimate is refunded, never past burst", () => {
    let b = bucketTake(bucketInit(tpm, T0), tpm, 800, T0);
    b = bucketAdjust(b, tpm, -300, T0); // actual 500
    expect(b.level).toBe(500);
    b = bucketAdjust(b, tpm, -10_000, T0);
    expect(b.level).toBe(1_000);
  });
});

describe("tokenBucket - rebase on a policy change", () => {
  it("keeps the level: usage survives a raised limit", () => {
    const wide = resolveLimits({ rpm: 600, burst: 100 }).buckets[0]!;
    let b = bucketInit(rpm, T0);
    for (let i = 0; i < 7; i++) b = bucketTake(b, rpm, 1, T0);
    b = bucketRebase(b, rpm, wide, T0);
    expect(b).toEqual({ level: 3, at: T0 });
    // ...and refills at the new rate from there: 10 a second.
    expect(bucketLevel(b, wide, T0 + 1_000)).toBeCloseTo(13, 9);
  });

  it("clamps the level to a smaller burst", () => {
    const narrow = resolveLimits({ rpm: 60, burst: 4 }).buckets[0]!;
    const b = bucketRebase(bucketInit(rpm, T0), rpm, narrow, T0);
    expect(b).toEqual({ level: 4, at: T0 });
  });

  it("reads the level under the old rate up to the change", () => {
    const slow = resolveLimits({ rpm: 6, burst: 10 }).buckets[0]!;
    let b = bucketInit(rpm, T0);
    for (let i = 0; i < 10; i++) b = bucketTake(b, rpm, 1, T0);
    // 2 s at the old rate (1/s) refilled 2 units; the slower rate only applies afterwards.
    b = bucketRebase(b, rpm, slow, T0 + 2_000);
    expect(b.level).toBeCloseTo(2, 12);
    expect(bucketLevel(b, slow, T0 + 12_000)).toBeCloseTo(3, 9);
  });

  it("keeps debt", () => {
    const other = resolveLimits({ tpm: 60_000, tpmBurst: 5_000 }).buckets[0]!;
    const b = bucketRebase({ level: -250, at: T0 }, tpm, other, T0);
    expect(b).toEqual({ level: -250, at: T0 });
  });
});
