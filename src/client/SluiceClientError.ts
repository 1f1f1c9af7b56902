/**
 * The one error class of the client: every failure of a call — bad input, an
 * error reply, NATS being unreachable, a guard that ran out of time — is a
 * {@link SluiceClientError} with a `code`, an HTTP-like `status` and, where
 * there was one, the underlying `cause`. A rejection is not an error: `admit()`
 * resolves with it as a {@link Decision}. Only `guard()` turns a rejection it
 * could not wait out into an error, with code `rejected`.
 */
import { errors as natsErrors } from "@nats-io/transport-node";
import type { Decision } from "../protocol/decision.js";
import { ERROR_STATUS } from "../protocol/errors.js";

/** Every code a {@link SluiceClientError} can carry, with its HTTP-like status. */
export const CLIENT_ERROR_STATUS = {
  ...ERROR_STATUS,
  /** `guard()` gave up: sluice kept rejecting until the deadline, or rejected for good. */
  rejected: 429,
  /** NATS refused the subject: the connection's user may not publish there (for example `admin.>`). */
  forbidden: 403,
} as const;

/**
 * What went wrong: `bad_request` (400), `too_large` (413), `unavailable` (503:
 * sluice is shutting down or overloaded, NATS timed out, no responders, the
 * connection is closed), `internal` (500), `forbidden` (403: a NATS permission
 * violation) or `rejected` (429: `guard()` only).
 */
export type SluiceClientErrorCode = keyof typeof CLIENT_ERROR_STATUS;

/** Extra data of a {@link SluiceClientError}. */
export interface SluiceClientErrorOptions {
  /** The underlying error (a NATS error, an error reply's status, …). */
  cause?: unknown;
  /** For `rejected`: the last decision sluice gave. */
  decision?: Decision;
  /** Overrides the status derived from `code` (for an error reply with an unknown code). */
  status?: number;
}

/** A failed sluice call. See {@link SluiceClientErrorCode} for the codes. */
export class SluiceClientError extends Error {
  /** Machine-readable reason; see {@link SluiceClientErrorCode}. */
  readonly code: SluiceClientErrorCode;
  /** HTTP-like status: the error reply's `Nats-Service-Error-Code`, or the code's usual status. */
  readonly status: number;
  /** For code `rejected`: the last decision, with its `reason`, `scope` and `retryAfterMs`. */
  readonly decision?: Decision;

  constructor(code: SluiceClientErrorCode, message: string, options: SluiceClientErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SluiceClientError";
    this.code = code;
    this.status = options.status ?? CLIENT_ERROR_STATUS[code];
    if (options.decision) this.decision = options.decision;
  }
}

/** True for a {@link SluiceClientError}, optionally of one `code`. */
export function isSluiceClientError(e: unknown, code?: SluiceClientErrorCode): e is SluiceClientError {
  return e instanceof SluiceClientError && (code === undefined || e.code === code);
}

const isCode = (c: unknown): c is SluiceClientErrorCode => typeof c === "string" && Object.hasOwn(CLIENT_ERROR_STATUS, c);

/**
 * The error of an error reply `{ error: { code, message } }`, or undefined when
 * `body` is not one. `statusHeader` is `Nats-Service-Error-Code`.
 */
export function fromErrorReply(body: unknown, statusHeader?: string): SluiceClientError | undefined {
  const err = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (typeof err !== "object" || err === null) {
    if (!statusHeader) return undefined;
    // Headers without a body we understand: still an error, named by its status.
    const status = Number(statusHeader);
    const code = (Object.entries(ERROR_STATUS).find(([, s]) => s === status)?.[0] ?? "internal") as SluiceClientErrorCode;
    return new SluiceClientError(code, `error reply ${statusHeader}`, { status: Number.isFinite(status) ? status : undefined });
  }
  const message = typeof err.message === "string" ? err.message : "error reply";
  const status = statusHeader !== undefined && statusHeader !== "" ? Number(statusHeader) : undefined;
  // A code from a newer sluice is kept as `internal`, its status as sent.
  const code = isCode(err.code) ? err.code : "internal";
  const text = isCode(err.code) ? message : `${String(err.code)}: ${message}`;
  return new SluiceClientError(code, text, { status: status !== undefined && Number.isFinite(status) ? status : undefined });
}

/** A NATS failure (timeout, no responders, closed connection, permission violation) as a client error. */
export function fromTransportError(e: unknown, subject: string): SluiceClientError {
  if (e instanceof SluiceClientError) return e;
  const perm = findCause(e, natsErrors.PermissionViolationError);
  if (perm) return new SluiceClientError("forbidden", `${subject}: ${perm.message}`, { cause: e });
  let what: string;
  if (findCause(e, natsErrors.TimeoutError)) what = "timed out";
  else if (findCause(e, natsErrors.NoRespondersError)) what = "no responders (is sluice running with this prefix?)";
  else what = e instanceof Error ? e.message : String(e);
  return new SluiceClientError("unavailable", `${subject}: ${what}`, { cause: e });
}

function findCause<T extends Error>(e: unknown, cls: abstract new (...args: never[]) => T): T | undefined {
  for (let c = e, depth = 0; c instanceof Error && depth < 5; c = c.cause, depth++) if (c instanceof cls) return c;
  return undefined;
}
