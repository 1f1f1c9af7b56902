import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PackedDecision } from "../../src/admission/PackedDecision.js";
import type { Decision, LimitInfo } from "../../src/protocol/decision.js";

/** A limit with its fields in the order the scope machine makes them. */
const limit = (l: Partial<LimitInfo> & Pick<LimitInfo, "scope" | "kind">): LimitInfo => ({
  scope: l.scope,
  kind: l.kind,
  unit: l.unit,
  limit: l.limit ?? 10,
  remaining: l.remaining ?? 3,
  resetMs: l.resetMs,
});

describe("a decision kept for its id (PackedDecision)", () => {
  it("unpacks equal to what was packed, every field and limit, as a new object each time", () => {
    const admit: Decision = {
      decision: "admit",
      reason: "ok",
      lease: "L-1",
      delayMs: 250,
      limits: [
        limit({ scope: "key:k", kind: "rpm", limit: 600_000, remaining: 599_999, resetMs: 0.1 }),
        limit({ scope: "team:t", kind: "budget", unit: "cost", limit: 12.5, remaining: 0.012_5, resetMs: 86_400_000 }),
        limit({ scope: "model:m", kind: "concurrency", limit: 1e6, remaining: 999_999 }),
        limit({ scope: "model:m", kind: "tpm", limit: 100_000_000_000, remaining: 99_999_998_800 }),
      ],
    };
    const packed = PackedDecision.pack(admit);
    const a = packed.unpack();
    const b = packed.unpack();
    expect(a).toStrictEqual(admit);
    expect(JSON.stringify(a)).toBe(JSON.stringify(admit));
    expect(a).not.toBe(b);
    // A caller that changes its copy does not change the next repeat.
    a.limits.pop();
    expect(packed.unpack()).toStrictEqual(admit);
  });

  it("keeps a refusal's scope, retry time (or its absence) and fallback, and no limits at all", () => {
    const withAll: Decision = { decision: "reject", reason: "circuit_open", scope: "model:m", retryAfterMs: 950, fallback: "m-mini", limits: [limit({ scope: "model:m", kind: "rps" })] };
    const tooLarge: Decision = { decision: "reject", reason: "too_large", scope: "key:k", limits: [] };
    expect(PackedDecision.pack(withAll).unpack()).toStrictEqual(withAll);
    expect(PackedDecision.pack(tooLarge).unpack()).toStrictEqual(tooLarge);
    expect("retryAfterMs" in PackedDecision.pack(tooLarge).unpack()).toBe(false);
  });

  it("round-trips any decision the protocol allows (property)", () => {
    const finite = fc.double({ min: 0, max: 1e15, noNaN: true });
    const limitArb = fc.record({
      scope: fc.string({ minLength: 1, maxLength: 40 }),
      kind: fc.constantFrom("rps", "rpm", "rph", "tps", "tpm", "tph", "concurrency", "budget"),
      unit: fc.option(fc.constantFrom("cost", "tokens", "requests"), { nil: undefined }),
      limit: finite,
      remaining: finite,
      resetMs: fc.option(finite, { nil: undefined }),
    }) as fc.Arbitrary<LimitInfo>;
    const admitArb = fc.record({
      decision: fc.constant("admit" as const),
      reason: fc.constant("ok" as const),
      lease: fc.string({ minLength: 1 }),
      delayMs: fc.nat(),
      limits: fc.array(limitArb, { maxLength: 12 }),
    });
    const rejectArb = fc
      .record({
        reason: fc.constantFrom("rate_limited", "concurrency", "budget_exhausted", "circuit_open", "overloaded", "backoff", "too_large"),
        scope: fc.string({ minLength: 1 }),
        retryAfterMs: fc.option(fc.nat(), { nil: undefined }),
        fallback: fc.option(fc.string({ minLength: 1 }), { nil: undefined }),
        limits: fc.array(limitArb, { maxLength: 12 }),
      })
      .map(({ reason, scope, retryAfterMs, fallback, limits }) => {
        const d: Decision = { decision: "reject", reason, scope, limits };
        if (retryAfterMs !== undefined) d.retryAfterMs = retryAfterMs;
        if (fallback !== undefined) d.fallback = fallback;
        return d;
      });
    fc.assert(
      fc.property(fc.oneof(admitArb, rejectArb), (d: Decision) => {
        const u = PackedDecision.pack(d).unpack();
        // (toStrictEqual also compares fast-check's own marks on the values it made.)
        expect(u).toEqual(d);
        expect(JSON.stringify(u)).toBe(JSON.stringify(d));
      }),
    );
  });
});
