import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeSubjectToken, encodeSubjectToken } from "../../src/protocol/subjectToken.js";

describe("subject tokens", () => {
  it("leaves plain names alone and encodes what a token cannot hold", () => {
    expect(encodeSubjectToken("gpt-4o_mini")).toBe("gpt-4o_mini");
    expect(encodeSubjectToken("gpt-4.1")).toBe("gpt-4%2E1");
    expect(encodeSubjectToken("a b*>%")).toBe("a%20b%2A%3E%25");
    expect(encodeSubjectToken("")).toBe("%");
    expect(encodeSubjectToken("modèle")).toBe("mod%C3%A8le");
  });

  it("round-trips every string, and never yields a character NATS treats specially", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 64 }), (s) => {
        const t = encodeSubjectToken(s);
        expect(t).not.toMatch(/[.*>\s]/);
        expect(t.length).toBeGreaterThan(0);
        expect(decodeSubjectToken(t)).toBe(s);
      }),
    );
  });

  it("is injective: different names never share a token", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        fc.pre(a !== b);
        expect(encodeSubjectToken(a)).not.toBe(encodeSubjectToken(b));
      }),
    );
  });

  it("refuses malformed tokens", () => {
    expect(() => decodeSubjectToken("a%2")).toThrow(TypeError);
    expect(() => decodeSubjectToken("a%zz")).toThrow(TypeError);
  });
});
