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
export const scopeKindSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,63}$/, { error: "a scope kind is a lower-case word ([a-z][a-z0-9_-]*)" });

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
});
export type AdmitRequest = z.output<typeof admitRequestSchema>;
export type AdmitRequestInput = z.input<typeof admitRequestSchema>;

export const OUTCOMES = ["ok", "rate_limited", "error", "timeout", "cancelled"] as const;

export const reportSchema = z
  .strictObject({
    lease: z.string().min(1).max(256).optional(),
    key: name.optional(),
    model: name.optional(),
    outcome: z.enum(OUTCOMES, { error: `expected one of ${OUTCOMES.join(", ")}` }),
    tokens: nonNegInt(MAX_TOKENS).optional(),
    cost: nonNeg(MAX_COST).optional(),
    ttftMs: nonNeg(86_400_000).optional(),
    itlMs: nonNeg(86_400_000).optional(),
    latencyMs: nonNeg(86_400_000).optional(),
    retryAfterMs: nonNeg(86_400_000).optional(),
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
  scope: z.string().min(3).max(400).regex(/^[a-z][a-z0-9_-]{0,63}:.+$/s, { error: 'expected "kind:value"' }),
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
