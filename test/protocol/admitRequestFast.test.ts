import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_COST, MAX_SCOPES, MAX_TOKENS, MAX_WAIT_MS, admitRequestFast, admitRequestSchema, parseAdmitRequest } from "../../src/protocol/schemas.js";

// Values near every edge of the schema: in range, just past it, wrong types.
const number = fc.oneof(
  fc.constantFrom(0, -0, 1, -1, 0.5, MAX_TOKENS, MAX_TOKENS + 1, MAX_COST, MAX_COST + 0.5, MAX_WAIT_MS, MAX_WAIT_MS + 1, 1e300),
  fc.integer({ min: -10, max: 2_000_000 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const name = fc.oneof(fc.string({ minLength: 0, maxLength: 6 }), fc.constantFrom("a".repeat(256), "a".repeat(257), "gpt-4o", "key", "model"));
const kind = fc.oneof(fc.constantFrom("team", "job", "key", "model", "Team", "_x", "a".repeat(64), "a".repeat(65), "x-y_1", "__proto__", "constructor"), fc.string({ maxLength: 5 }));
const any = fc.oneof(number, name, fc.boolean(), fc.constant(null), fc.constant([]), fc.constant({}));
const scopes = fc.oneof(
  fc.dictionary(kind, fc.oneof(name, name, any), { maxKeys: MAX_SCOPES + 2 }),
  any,
);
// Well-formed requests, as workers send them.
const valid = fc.record(
  {
    key: fc.string({ minLength: 1, maxLength: 40 }),
    model: fc.string({ minLength: 1, maxLength: 40 }),
    tokens: fc.integer({ min: 0, max: MAX_TOKENS }),
    cost: fc.double({ min: 0, max: MAX_COST, noNaN: true }),
    scopes: fc.dictionary(fc.constantFrom("team", "job", "org", "region"), fc.string({ minLength: 1, maxLength: 20 })),
    waitMs: fc.integer({ min: 0, max: MAX_WAIT_MS }),
    id: fc.string({ minLength: 1, maxLength: 30 }),
    limits: fc.constantFrom("all", "tightest", "none"),
  },
  { requiredKeys: ["key", "model"] },
);

// A well-formed request with up to two fields set to edge values, wrong types or removed, or an unknown field added.
const fields = ["key", "model", "tokens", "cost", "scopes", "waitMs", "id", "limits", "extra"] as const;
const edge = fc.oneof(number, name, any, scopes, fc.constantFrom("all", "tightest", "none", "All", ""), fc.constant(undefined));
const body = fc.tuple(valid, fc.array(fc.tuple(fc.constantFrom(...fields), edge), { maxLength: 2 })).map(([b, changes]) => {
  const out: Record<string, unknown> = { ...b };
  for (const [f, v] of changes) {
    if (v === undefined) delete out[f];
    else out[f] = v;
  }
  return out;
});

describe("admitRequestFast", () => {
  it("accepts only what the schema accepts, and gives what it gives (through JSON, as bodies arrive)", () => {
    let accepted = 0;
    fc.assert(
      fc.property(body, (b) => {
        const v: unknown = JSON.parse(JSON.stringify(b));
        const fast = admitRequestFast(v);
        const schema = admitRequestSchema.safeParse(v);
        if (fast !== undefined) {
          accepted++;
          expect(schema.success).toBe(true);
          expect(fast).toStrictEqual(schema.data);
        }
        // Either way the caller gets the schema's answer.
        if (schema.success) expect(parseAdmitRequest(v)).toStrictEqual(schema.data);
        else expect(() => parseAdmitRequest(v)).toThrow();
      }),
      { numRuns: 3000 },
    );
    // The generator reaches the accepting side often enough for the comparison to mean something.
    expect(accepted).toBeGreaterThan(100);
  });

  it("takes every well-formed request itself", () => {
    fc.assert(
      fc.property(valid, (b) => {
        const v: unknown = JSON.parse(JSON.stringify(b));
        expect(admitRequestFast(v)).toStrictEqual(admitRequestSchema.parse(v));
      }),
      { numRuns: 1000 },
    );
  });

  it("leaves what is not a plain JSON object to the schema", () => {
    for (const v of [null, [], "x", 1, Object.create(null), new (class { key = "k"; model = "m" })()]) {
      expect(admitRequestFast(v)).toBeUndefined();
    }
    expect(admitRequestFast(JSON.parse('{"key":"k","model":"m","__proto__":{"x":1}}'))).toBeUndefined();
  });
});
