/**
 * The bodies of the wire protocol, validated once at the edge with zod. The
 * client package types its calls from the same schemas.
 */
import { z } from "zod";
import { badRequest } from "./errors.js";

/** Largest token count accepted in one request or report. */
export const MAX_TOKENS = 1_000_000_000;
/** Largest cost accepted in one request or report. */
export const MAX_COST = 1_000_000;
/** Longest a caller may wait in sluice's queue, ms. */
export const MAX_WAIT_MS = 300_000;
/** Largest duration a report carries (its latencies, the upstream's retry time), ms: a day. */
export const MAX_REPORT_MS = 86_400_000;
/** Most extra scopes one admission may name. */
export const MAX_SCOPES = 16;
/** Most requests in one `admit.batch`. */
export const MAX_BATCH = 1000;

const nonNegInt = (max: number) => {
  const msg = `expected a non-negative integer (at most ${max})`;
  return z.number({ error: msg }).int({ error: msg }).min(0, { error: msg }).max(max, { error: msg });
};
const nonNeg = (max: number) => {
  const msg = `expected a non-negative number (at most ${max})`;
  return z.number({ error: msg }).min(0, { error: msg }).max(max, { error: msg });
};
const name = z
  .string({ error: "expected a string of 1 to 256 characters" })
  .min(1, { error: "expected a string of 1 to 256 characters" })
  .max(256, { error: "expected a string of 1 to 256 characters" });

/** A scope kind: lower-case word, so that it is a plain subject token. */
const SCOPE_KIND = /^[a-z][a-z0-9_-]{0,63}$/;
export const scopeKindSchema = z
  .string()
  .regex(SCOPE_KIND, { error: "a scope kind is a lower-case word ([a-z][a-z0-9_-]*)" });

/**
 * How much of `limits` a decision carries: every limit that applied, tightest first
 * (`all`, the default), only the first of them (`tightest`), or none (`none`: an
 * empty array). The decision itself is the same; a caller that reads no limits
 * spares the bytes (about 600 of a 720-byte decision with seven limits).
 */
const LIMITS_MODES = ["all", "tightest", "none"] as const;
export type LimitsMode = (typeof LIMITS_MODES)[number];
export const limitsModeSchema = z.enum(LIMITS_MODES, { error: 'expected "all", "tightest" or "none"' });

export const admitRequestSchema = z.strictObject({
  key: name,
  model: name,
  tokens: nonNegInt(MAX_TOKENS).default(0),
  cost: nonNeg(MAX_COST).default(0),
  scopes: z
    .record(scopeKindSchema, name, { error: "expected an object of scope kind to value" })
    .refine((s) => Object.keys(s).length <= MAX_SCOPES, { error: `at most ${MAX_SCOPES} scopes` })
    .refine((s) => !("key" in s) && !("model" in s), { error: "key and model are named by the top-level fields" })
    .default({}),
  waitMs: nonNegInt(MAX_WAIT_MS).default(0),
  id: name.optional(),
  limits: limitsModeSchema.optional(),
});
export type AdmitRequest = z.output<typeof admitRequestSchema>;
export type AdmitRequestInput = z.input<typeof admitRequestSchema>;

const hasOwn = Object.prototype.hasOwnProperty;

function isName(v: unknown): v is string {
  return typeof v === "string" && v.length >= 1 && v.length <= 256;
}

function isNonNeg(v: unknown, max: number, int: boolean): v is number {
  return typeof v === "number" && v >= 0 && v <= max && (!int || Number.isInteger(v));
}

/**
 * {@link admitRequestSchema}'s result for a body that it accepts as it stands, checked by
 * hand; undefined for anything else, which then goes to the schema (the one place that
 * says what is wrong, naming the field). Nearly every admission is well formed, and the
 * schema took about 5% of sluice's time per admission. A property test holds the two
 * to the same answers.
 */
export function admitRequestFast(v: unknown): AdmitRequest | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v) || Object.getPrototypeOf(v) !== Object.prototype) return undefined;
  const o = v as Record<string, unknown>;
  let n = 0;
  for (const k in o) {
    if (!hasOwn.call(o, k)) return undefined;
    n++;
  }
  const { key, model, tokens = 0, cost = 0, scopes, waitMs = 0, id, limits } = o;
  let known = 2;
  if (!isName(key) || !isName(model)) return undefined;
  if (hasOwn.call(o, "tokens")) known++;
  if (hasOwn.call(o, "cost")) known++;
  if (hasOwn.call(o, "waitMs")) known++;
  if (!isNonNeg(tokens, MAX_TOKENS, true) || !isNonNeg(cost, MAX_COST, false) || !isNonNeg(waitMs, MAX_WAIT_MS, true)) return undefined;
  const out: Record<string, string> = {};
  if (hasOwn.call(o, "scopes")) {
    known++;
    if (typeof scopes !== "object" || scopes === null || Array.isArray(scopes) || Object.getPrototypeOf(scopes) !== Object.prototype) return undefined;
    let count = 0;
    for (const kind in scopes as Record<string, unknown>) {
      const value = (scopes as Record<string, unknown>)[kind];
      if (!hasOwn.call(scopes, kind) || !SCOPE_KIND.test(kind) || !isName(value) || kind === "key" || kind === "model" || ++count > MAX_SCOPES) return undefined;
      out[kind] = value;
    }
  }
  if (hasOwn.call(o, "id")) {
    known++;
    if (!isName(id)) return undefined;
  }
  if (hasOwn.call(o, "limits")) {
    known++;
    if (!(LIMITS_MODES as readonly unknown[]).includes(limits)) return undefined;
  }
  // Any other field is unknown: the schema refuses it by name.
  if (known !== n) return undefined;
  const req: AdmitRequest = { key, model, tokens, cost, scopes: out, waitMs };
  if (id !== undefined) req.id = id as string;
  if (limits !== undefined) req.limits = limits as LimitsMode;
  return req;
}

/** {@link admitRequestSchema}'s `safeParse`, taking a well-formed body by {@link admitRequestFast}. */
export function safeParseAdmitRequest(v: unknown): ReturnType<typeof admitRequestSchema.safeParse> {
  const fast = admitRequestFast(v);
  return fast ? { success: true, data: fast } : admitRequestSchema.safeParse(v);
}

/** An admission request from a decoded body, or `bad_request` naming the field. */
export function parseAdmitRequest(v: unknown): AdmitRequest {
  const r = safeParseAdmitRequest(v);
  if (!r.success) throw badRequest(describeZodError(r.error));
  return r.data;
}

export const OUTCOMES = ["ok", "rate_limited", "error", "timeout", "cancelled"] as const;

export const reportSchema = z
  .strictObject({
    // No control characters: a lease id goes into a JetStream message id header, where \r or \n cannot.
    lease: z
      .string()
      .min(1)
      .max(256)
      .regex(/^[^\x00-\x1f\x7f]+$/, { error: "expected a lease id (no control characters)" })
      .optional(),
    key: name.optional(),
    model: name.optional(),
    outcome: z.enum(OUTCOMES, { error: `expected one of ${OUTCOMES.join(", ")}` }),
    tokens: nonNegInt(MAX_TOKENS).optional(),
    cost: nonNeg(MAX_COST).optional(),
    ttftMs: nonNeg(MAX_REPORT_MS).optional(),
    itlMs: nonNeg(MAX_REPORT_MS).optional(),
    latencyMs: nonNeg(MAX_REPORT_MS).optional(),
    retryAfterMs: nonNeg(MAX_REPORT_MS).optional(),
  })
  .refine((r) => r.lease !== undefined || (r.key !== undefined && r.model !== undefined), {
    error: "a report names its lease, or its key and model",
    path: ["lease"],
  });
export type Report = z.output<typeof reportSchema>;
export type ReportInput = z.input<typeof reportSchema>;

export const inspectRequestSchema = z.union(
  [
    z.strictObject({ scope: z.string().min(1).max(400) }),
    z.strictObject({ list: z.string().max(400), limit: z.number().int().min(1).max(10_000).optional() }),
  ],
  { error: 'expected { "scope": "kind:value" } or { "list": "prefix" }' },
);
export type InspectRequest = z.output<typeof inspectRequestSchema>;

export const resetRequestSchema = z.strictObject({
  // The value within the 256 characters of every other name: a reset is journaled on a subject
  // that carries the scope, and a longer one (percent-encoded) passed NATS's control-line limit.
  scope: z.string().min(3).max(400).regex(/^[a-z][a-z0-9_-]{0,63}:.{1,256}$/su, { error: 'expected "kind:value" (a value of 1 to 256 characters)' }),
  what: z.enum(["breaker", "usage", "all"], { error: "expected breaker, usage or all" }).default("all"),
});
export type ResetRequest = z.output<typeof resetRequestSchema>;

/** `field.path: message` of the first problem zod found. */
export function describeZodError(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid request";
  if (issue.code === "unrecognized_keys") {
    const base = issue.path.map(String).join(".");
    return issue.keys.map((k) => (base ? `${base}.${k}` : k)).join(", ") + ": unknown field";
  }
  // Union failures: report the branch that got furthest.
  if (issue.code === "invalid_union" && issue.errors.length > 0) {
    // Branch issues' paths are relative to the union's own place.
    const deepest = issue.errors.flat().sort((a, b) => b.path.length - a.path.length)[0];
    if (deepest && deepest.path.length > 0) return `${[...issue.path, ...deepest.path].map(String).join(".")}: ${deepest.message}`;
  }
  const path = issue.path.map(String).join(".");
  return path ? `${path}: ${issue.message}` : issue.message;
}

/** Parse `value` with `schema` or throw a `bad_request` naming the field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw badRequest(describeZodError(r.error));
  return r.data;
}
