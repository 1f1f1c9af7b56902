/**
 * Recognising an upstream 429 in whatever an SDK throws: an error with
 * `status === 429` or `statusCode === 429` (OpenAI, Anthropic, fetch wrappers,
 * got, axios' `response.status`), and its retry time from `retryAfterMs`, the
 * `retry-after-ms` header (milliseconds) or the `retry-after` header (seconds,
 * or an HTTP date).
 */
import { MAX_REPORT_MS } from "../protocol/schemas.js";

/** What a thrown upstream 429 tells: that it was one, and when to retry. */
export interface UpstreamRateLimit {
  /** The upstream's own retry time, ms, when it gave one. */
  retryAfterMs?: number;
}

type HeaderBag = { get?: (name: string) => string | null | undefined } & Record<string, unknown>;

/**
 * Longest retry time passed on, ms: the report's bound, a day. A longer one (a
 * Retry-After of 90 000 s, a date next week) would make sluice refuse the whole
 * report, and the lease would hold its slot until it expired.
 */
export const MAX_UPSTREAM_RETRY_AFTER_MS = MAX_REPORT_MS;

/** If `err` looks like an upstream 429, what it says about the retry time (at most a day); otherwise undefined. */
export function upstreamRateLimit(err: unknown, now: number): UpstreamRateLimit | undefined {
  const r = upstreamRateLimitRaw(err, now);
  if (r?.retryAfterMs !== undefined && r.retryAfterMs > MAX_UPSTREAM_RETRY_AFTER_MS) return { retryAfterMs: MAX_UPSTREAM_RETRY_AFTER_MS };
  return r;
}

function upstreamRateLimitRaw(err: unknown, now: number): UpstreamRateLimit | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as { status?: unknown; statusCode?: unknown; response?: { status?: unknown; headers?: unknown }; retryAfterMs?: unknown; headers?: unknown };
  const is429 = e.status === 429 || e.statusCode === 429 || e.response?.status === 429;
  if (!is429) return undefined;
  if (typeof e.retryAfterMs === "number" && Number.isFinite(e.retryAfterMs) && e.retryAfterMs >= 0) return { retryAfterMs: e.retryAfterMs };
  const headers = (e.headers ?? e.response?.headers) as HeaderBag | undefined;
  const ms = header(headers, "retry-after-ms");
  if (ms !== undefined && /^\d+(\.\d+)?$/.test(ms.trim())) return { retryAfterMs: Number(ms) };
  const ra = header(headers, "retry-after")?.trim();
  if (ra !== undefined && ra !== "") {
    if (/^\d+(\.\d+)?$/.test(ra)) return { retryAfterMs: Math.round(Number(ra) * 1000) };
    const at = Date.parse(ra);
    if (Number.isFinite(at)) return { retryAfterMs: Math.max(0, at - now) };
  }
  return {};
}

function header(headers: HeaderBag | undefined, name: string): string | undefined {
  if (typeof headers !== "object" || headers === null) return undefined;
  if (typeof headers.get === "function") {
    const v = headers.get(name);
    return typeof v === "string" ? v : undefined;
  }
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== name) continue;
    if (typeof v === "string") return v;
    if (typeof v === "number") return String(v);
    if (Array.isArray(v) && typeof v[0] === "string") return v[0];
  }
  return undefined;
}
