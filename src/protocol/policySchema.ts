/**
 * The policy document (PROTOCOL.md "Policy"), validated with zod. A document that
 * does not validate is refused with `bad_request` naming the field, and the
 * policy in force stays as it was.
 */
import { z } from "zod";
import { type PolicyDocument, RATE_KINDS, type ResolvedLimits, type ScopePolicy, effectivePolicy } from "../../machines/policy.js";
import { describeZodError, scopeKindSchema } from "./schemas.js";
import { badRequest } from "./errors.js";

const positive = (what = "expected a positive number") => z.number({ error: what }).positive({ error: what }).finite({ error: what });
const positiveInt = (what = "expected a positive integer") => z.number({ error: what }).int({ error: what }).positive({ error: what });
const nonNegInt = (what = "expected a non-negative integer") => z.number({ error: what }).int({ error: what }).min(0, { error: what });
const share = z.number({ error: "expected a number from 0 to 1" }).min(0, { error: "expected a number from 0 to 1" }).max(1, { error: "expected a number from 0 to 1" });

const budget = z
  .strictObject({
    limit: z.number({ error: "expected a non-negative number" }).min(0, { error: "expected a non-negative number" }).finite(),
    unit: z.enum(["cost", "tokens", "requests"], { error: "expected cost, tokens or requests" }).optional(),
    period: z.enum(["hour", "day", "week", "month"], { error: "expected hour, day, week or month" }).optional(),
    calendar: z.boolean({ error: "expected true or false" }).optional(),
    periodMs: positiveInt().optional(),
  })
  .refine((b) => !(b.period && b.periodMs), { error: "give period or periodMs, not both", path: ["periodMs"] })
  .refine((b) => !(b.calendar && !b.period), { error: "calendar needs a period", path: ["calendar"] });

const breaker = z.strictObject({
  errorRate: share,
  windowMs: positiveInt(),
  minRequests: positiveInt(),
  cooldownMs: positiveInt(),
  probes: positiveInt(),
  countRateLimited: z.boolean({ error: "expected true or false" }).optional(),
});

const adaptive = z
  .strictObject({
    baseMs: positive(),
    maxMs: positive(),
    factor: z.number({ error: "expected a number of at least 1" }).min(1, { error: "expected a number of at least 1" }).finite(),
    recovery: z.number({ error: "expected a number in (0, 1)" }).gt(0, { error: "expected a number in (0, 1)" }).lt(1, { error: "expected a number in (0, 1)" }),
    recoverAfter: positiveInt(),
    maxDelayMs: z.number().min(0).finite().optional(),
  })
  .refine((a) => a.maxMs >= a.baseMs, { error: "maxMs must be at least baseMs", path: ["maxMs"] });

const latency = z
  .strictObject({
    ttftMs: positive().optional(),
    itlMs: positive().optional(),
    tauMs: positive(),
    initialConcurrency: positiveInt().optional(),
    minConcurrency: positiveInt().optional(),
    maxConcurrency: positiveInt().optional(),
  })
  .refine((l) => l.ttftMs !== undefined || l.itlMs !== undefined, { error: "give ttftMs or itlMs", path: ["ttftMs"] })
  .refine((l) => l.minConcurrency === undefined || l.maxConcurrency === undefined || l.minConcurrency <= l.maxConcurrency, {
    error: "must be at most maxConcurrency",
    path: ["minConcurrency"],
  })
  .refine(
    (l) =>
      l.initialConcurrency === undefined ||
      ((l.minConcurrency === undefined || l.initialConcurrency >= l.minConcurrency) && (l.maxConcurrency === undefined || l.initialConcurrency <= l.maxConcurrency)),
    { error: "must lie within minConcurrency and maxConcurrency", path: ["initialConcurrency"] },
  );

const scopeFields = {
  rps: positive(),
  rpm: positive(),
  rph: positive(),
  tps: positive(),
  tpm: positive(),
  tph: positive(),
  burst: positive(),
  rpsBurst: positive(),
  rpmBurst: positive(),
  rphBurst: positive(),
  tpsBurst: positive(),
  tpmBurst: positive(),
  tphBurst: positive(),
  concurrency: nonNegInt(),
  budget: budget.or(z.array(budget, { error: "expected a budget or a list of budgets" }).min(1).max(8)),
  breaker,
  adaptive,
  latency,
  fallback: z.string().min(1).max(256),
  parents: z.record(scopeKindSchema, z.string().min(1).max(256)),
} as const;

type FieldName = keyof typeof scopeFields;
const optionalFields = Object.fromEntries(Object.entries(scopeFields).map(([k, v]) => [k, v.optional()])) as {
  [K in FieldName]: z.ZodOptional<(typeof scopeFields)[K]>;
};
// An override may remove a default limit with null, and may give only some fields of a nested
// object (they merge one level deep over the default); the merged result is validated in full below.
const loose = (o: z.ZodType) => z.record(z.string(), z.unknown(), { error: "expected an object" }).or(o);
const nullableFields = Object.fromEntries(
  Object.entries(scopeFields).map(([k, v]) => [k, (["budget", "breaker", "adaptive", "latency"].includes(k) ? loose(v) : v).nullable().optional()]),
) as unknown as { [K in FieldName]: z.ZodOptional<z.ZodNullable<z.ZodType>> };

const scopePolicy = z.strictObject(optionalFields);
const scopeOverride = z.strictObject(nullableFields);

export const policySchema = z.strictObject({
  leaseTtlMs: positiveInt().max(86_400_000, { error: "at most one day" }).optional(),
  jitter: z
    // At most 10: a retry time ×1e308 is no number at all (it went out as null).
    .strictObject({ min: z.number().min(0).max(10, { error: "at most 10" }), max: z.number().min(0).max(10, { error: "at most 10" }) })
    .refine((j) => j.max >= j.min, { error: "max must be at least min", path: ["max"] })
    .optional(),
  scopes: z.record(
    scopeKindSchema,
    z.strictObject({
      default: scopePolicy.optional(),
      overrides: z.record(z.string().min(1).max(256), scopeOverride).optional(),
    }),
  ),
});

// The schema and the machines' types describe the same scope policy.
const _check: (p: z.output<typeof scopePolicy>) => ScopePolicy = (p) => p;
void _check;

/**
 * A scope's limits as resolved from a policy (`resolveLimits`), in the shape a snapshot
 * stores them: the policy's own parts, and a bucket per rate with its burst and rate per ms.
 */
export const resolvedLimitsSchema = z.strictObject({
  buckets: z.array(
    z.strictObject({ kind: z.enum(RATE_KINDS), limit: positive(), burst: positive(), ratePerMs: positive(), tokens: z.boolean() }),
  ),
  budgets: z.array(budget).max(8),
  concurrency: scopeFields.concurrency.optional(),
  breaker: breaker.optional(),
  adaptive: adaptive.optional(),
  latency: latency.optional(),
  fallback: scopeFields.fallback.optional(),
  parents: scopeFields.parents.optional(),
});

// The schema and the machines' type describe the same limits.
const _checkLimits: (l: z.output<typeof resolvedLimitsSchema>) => ResolvedLimits = (l) => l;
void _checkLimits;

/** Validate a policy document; throws `bad_request` naming the first bad field. */
export function parsePolicy(doc: unknown): PolicyDocument {
  const r = policySchema.safeParse(doc);
  if (!r.success) throw badRequest(`policy: ${describeZodError(r.error)}`);
  // Overrides were checked loosely above; the merge check below completes them.
  const parsed = r.data as unknown as PolicyDocument;
  // Every override, merged over its default, must be a valid policy on its own.
  for (const [kind, kp] of Object.entries(parsed.scopes)) {
    for (const value of Object.keys(kp.overrides ?? {})) {
      const merged = scopePolicy.safeParse(effectivePolicy(parsed, kind, value));
      if (!merged.success) {
        throw badRequest(`policy: scopes.${kind}.overrides.${value}.${describeZodError(merged.error)} (after merging over the default)`);
      }
    }
  }
  return parsed;
}

/** The policy with no limits at all. */
export const EMPTY_POLICY: PolicyDocument = { scopes: {} };
