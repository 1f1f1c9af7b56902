import { describe, expect, it } from "vitest";
import { effectivePolicy } from "../../machines/policy.js";
import { parsePolicy } from "../../src/protocol/policySchema.js";

const breaker = { errorRate: 0.5, windowMs: 60_000, minRequests: 10, cooldownMs: 30_000, probes: 1 };
const refusal = (doc: unknown) => {
  try {
    parsePolicy(doc);
  } catch (e) {
    return (e as Error).message;
  }
  return "accepted";
};

describe("policy document", () => {
  it("accepts the protocol's example and the sample file shape", () => {
    const doc = parsePolicy({
      leaseTtlMs: 60_000,
      scopes: {
        key: { default: { rpm: 60, tpm: 100_000, concurrency: 4, budget: { limit: 10, period: "day", calendar: true } }, overrides: { "acme-prod": { rpm: 600 } } },
        model: { default: { rpm: 500, breaker }, overrides: { "gpt-4o": { fallback: "gpt-4o-mini" } } },
        job: { default: { budget: { limit: 5, unit: "requests" } } },
      },
    });
    expect(effectivePolicy(doc, "key", "acme-prod")).toMatchObject({ rpm: 600, tpm: 100_000, concurrency: 4 });
  });

  it("names the field of the first problem", () => {
    expect(refusal({ scopes: { key: { default: { rpm: 0 } } } })).toBe("policy: scopes.key.default.rpm: expected a positive number");
    expect(refusal({ scopes: { key: { default: { rpn: 5 } } } })).toBe("policy: scopes.key.default.rpn: unknown field");
    expect(refusal({ scopes: { Key: {} } })).toMatch(/^policy: scopes/);
    expect(refusal({ scopes: { key: { default: { budget: { limit: 1, period: "fortnight" } } } } })).toBe(
      "policy: scopes.key.default.budget.period: expected hour, day, week or month",
    );
    expect(refusal({ leaseTtlMs: -1, scopes: {} })).toBe("policy: leaseTtlMs: expected a positive integer");
    expect(refusal({})).toMatch(/^policy: scopes: /);
  });

  it("lets an override give part of a nested object, merged one level deep over the default", () => {
    const doc = parsePolicy({ scopes: { model: { default: { breaker }, overrides: { slow: { breaker: { cooldownMs: 5_000 } } } } } });
    expect(effectivePolicy(doc, "model", "slow").breaker).toEqual({ ...breaker, cooldownMs: 5_000 });
  });

  it("validates each override merged over its default", () => {
    expect(refusal({ scopes: { model: { overrides: { x: { breaker: { cooldownMs: 5 } } } } } })).toBe(
      "policy: scopes.model.overrides.x.breaker.errorRate: expected a number from 0 to 1 (after merging over the default)",
    );
    expect(refusal({ scopes: { key: { default: { budget: { limit: 1, period: "day" } }, overrides: { a: { budget: { periodMs: 5 } } } } } })).toMatch(
      /overrides\.a\.budget\.periodMs: give period or periodMs, not both/,
    );
  });

  it("lets an override remove a default limit with null", () => {
    const doc = parsePolicy({ scopes: { key: { default: { rpm: 60, concurrency: 2 }, overrides: { batch: { concurrency: null } } } } });
    expect(effectivePolicy(doc, "key", "batch")).toEqual({ rpm: 60 });
  });

  it("never reaches Object.prototype through scope names", () => {
    const doc = parsePolicy({ scopes: { key: { default: { rpm: 1 } } } });
    expect(effectivePolicy(doc, "key", "__proto__")).toEqual({ rpm: 1 });
    expect(effectivePolicy(doc, "constructor", "x")).toEqual({});
  });
});

describe("policy document - budget lists", () => {
  it("takes one budget or a list, and names the item of a bad one", () => {
    expect(refusal({ scopes: { key: { default: { budget: [{ limit: 1, unit: "tokens" }, { limit: 2, unit: "requests", period: "hour" }] } } } })).toBe("accepted");
    expect(refusal({ scopes: { key: { default: { budget: [{ limit: 1 }, { limit: -2 }] } } } })).toBe(
      "policy: scopes.key.default.budget.1.limit: expected a non-negative number",
    );
  });
});
