import type { ServiceMsg } from "@nats-io/services";
import { isSluiceRequestError, SluiceRequestError } from "../protocol/errors.js";
import type { Logger } from "../log.js";
import { utf8Bytes } from "../protocol/utf8.js";
import type { FramePublisher } from "./FramePublisher.js";

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Parse a message body as JSON; an empty body reads as `{}`. Throws `bad_request` / `too_large`. */
export function decodeBody(msg: { data: Uint8Array }, maxBytes: number): unknown {
  const data = msg.data;
  if (data.length > maxBytes) throw new SluiceRequestError("too_large", `body: ${data.length} bytes, at most ${maxBytes}`);
  if (data.length === 0) return {};
  let text: string;
  try {
    text = decoder.decode(data);
  } catch {
    throw new SluiceRequestError("bad_request", "body: not valid UTF-8");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new SluiceRequestError("bad_request", "body: not valid JSON");
  }
  // A "__proto__" field is kept by JSON.parse but dropped by the schemas' records, so a
  // request naming one would pass with it silently gone. Looked for only where the text has it.
  if (text.includes('"__proto__"') && hasProtoKey(value)) throw new SluiceRequestError("bad_request", "body: a field named __proto__ is not allowed");
  return value;
}

/** Does `v`, or anything in it, have an own field named `__proto__`? */
function hasProtoKey(v: unknown, depth = 0): boolean {
  if (typeof v !== "object" || v === null || depth > 64) return false;
  if (Array.isArray(v)) return v.some((x) => hasProtoKey(x, depth + 1));
  if (Object.hasOwn(v, "__proto__")) return true;
  for (const k in v) if (hasProtoKey((v as Record<string, unknown>)[k], depth + 1)) return true;
  return false;
}

/**
 * Publish an event's JSON body through `out` (with the connection's other messages of this
 * turn). A closed or draining connection must not take the decision path down with it:
 * logged, not thrown.
 */
export function publishEvent(out: FramePublisher, subject: string, body: string, logger: Logger): void {
  try {
    out.publish(subject, body);
  } catch (err) {
    logger.debug({ err, subject }, "event not published");
  }
}

/**
 * Answer with a JSON body through `out`, the publisher of the connection `msg` came on
 * (no-op for a message sent without a reply subject). A reply over the server's
 * `max_payload` cannot be sent (nats.js throws, the server would close the connection):
 * an array of decisions (a batch) is sent without their `limits`, which keeps every
 * lease and decision; anything still too large is answered `too_large`, naming the size.
 */
export function replyJson(out: FramePublisher, msg: ServiceMsg, value: unknown, logger: Logger): void {
  if (!msg.reply) return;
  let body = JSON.stringify(value);
  const max = out.maxPayload;
  if (body.length > max / 4 && Buffer.byteLength(body) > max) {
    const bytes = Buffer.byteLength(body);
    const lean = Array.isArray(value) ? JSON.stringify(value.map(withoutLimits)) : undefined;
    if (lean !== undefined && Buffer.byteLength(lean) <= max) {
      logger.warn({ subject: msg.subject, bytes, maxPayload: max }, "reply over max_payload: sent without the decisions' limits");
      body = lean;
    } else {
      const hint = "ask for fewer limits (limits: tightest or none), or send fewer items";
      replyError(msg, new SluiceRequestError("too_large", `reply: ${bytes} bytes, over the NATS server's max_payload of ${max}; ${hint}`), logger);
      return;
    }
  }
  try {
    out.publish(msg.reply, body);
  } catch (err) {
    // A closed or draining connection: nothing can be answered; it must not take the service down.
    logger.warn({ err, subject: msg.subject }, "reply not sent");
  }
}

/** A decision (an object with `limits`) without them; anything else as it is. */
function withoutLimits(item: unknown): unknown {
  return typeof item === "object" && item !== null && "limits" in item ? { ...item, limits: [] } : item;
}

/** Longest error message sent, characters: a message quotes what it refuses, and that can be most of a 1 MiB body. */
const MAX_ERROR_MESSAGE = 1_000;

/**
 * An error message fit for a header and a bounded body: control characters (a field name
 * with a newline: nats.js refuses a header value holding \r or \n) as spaces, and at most
 * {@link MAX_ERROR_MESSAGE} characters.
 */
export function clipErrorMessage(message: string): string {
  const flat = message.replace(/[\x00-\x1f\x7f]+/g, " ");
  return flat.length <= MAX_ERROR_MESSAGE ? flat : `${flat.slice(0, MAX_ERROR_MESSAGE - 1)}…`;
}

/**
 * Answer with an error reply: the JSON body `{ error: { code, message } }` and the
 * NATS micro headers. Unexpected errors are logged and answered `internal`.
 */
export function replyError(msg: ServiceMsg, err: unknown, logger: Logger): void {
  const e = isSluiceRequestError(err) ? err : new SluiceRequestError("internal", "internal error", { cause: err });
  if (!isSluiceRequestError(err)) logger.error({ err, subject: msg.subject }, "request failed");
  else if (err.code === "internal") logger.error({ err: err.cause ?? err, subject: msg.subject }, "request failed");
  if (!msg.reply) {
    logger.debug({ subject: msg.subject, code: e.code, message: e.message }, "refused a message sent without reply subject");
    return;
  }
  const message = clipErrorMessage(e.message);
  try {
    msg.respondError(e.status, message, utf8Bytes(JSON.stringify({ error: { code: e.code, message } })));
  } catch (err) {
    logger.warn({ err, subject: msg.subject }, "error reply not sent");
  }
}
