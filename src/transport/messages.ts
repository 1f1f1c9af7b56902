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
  try {
    return JSON.parse(text);
  } catch {
    throw new SluiceRequestError("bad_request", "body: not valid JSON");
  }
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

/** Answer with a JSON body through `out`, the publisher of the connection `msg` came on (no-op for a message sent without a reply subject). */
export function replyJson(out: FramePublisher, msg: ServiceMsg, value: unknown): void {
  if (!msg.reply) return;
  out.publish(msg.reply, JSON.stringify(value));
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
  msg.respondError(e.status, e.message, utf8Bytes(JSON.stringify(e.toReply())));
}
