/** Error codes of error replies, with their NATS micro status codes. */
export const ERROR_STATUS = {
  bad_request: 400,
  too_large: 413,
  unavailable: 503,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** The body of an error reply. */
export interface ErrorReply {
  error: { code: ErrorCode; message: string };
}

/** An expected refusal of a request (bad input, overload, shutdown), carried to the reply. */
export class SluiceRequestError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SluiceRequestError";
    this.code = code;
  }
  get status(): number {
    return ERROR_STATUS[this.code];
  }
  toReply(): ErrorReply {
    return { error: { code: this.code, message: this.message } };
  }
}

export function isSluiceRequestError(e: unknown): e is SluiceRequestError {
  return e instanceof SluiceRequestError;
}

export const badRequest = (message: string) => new SluiceRequestError("bad_request", message);
export const unavailable = (message: string) => new SluiceRequestError("unavailable", message);
