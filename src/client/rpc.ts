/**
 * One request/reply with sluice: JSON out, JSON back, and every way it can fail
 * turned into a {@link SluiceClientError} (error replies by their code,
 * NATS failures as `unavailable` or `forbidden`).
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { utf8Bytes } from "../protocol/utf8.js";
import { SluiceClientError, fromErrorReply, fromTransportError } from "./SluiceClientError.js";

/** Send `body` (already JSON, or a value to serialise) to `subject` and return the reply's JSON. */
export async function requestJson<T>(nc: NatsConnection, subject: string, body: unknown, timeoutMs: number): Promise<T> {
  const payload = utf8Bytes(typeof body === "string" ? body : JSON.stringify(body));
  let msg;
  try {
    msg = await nc.request(subject, payload, { timeout: timeoutMs });
  } catch (e) {
    throw fromTransportError(e, subject);
  }
  let value: unknown;
  try {
    value = msg.data.length === 0 ? undefined : msg.json();
  } catch (cause) {
    throw new SluiceClientError("internal", `${subject}: the reply is not JSON`, { cause });
  }
  const status = msg.headers?.get("Nats-Service-Error-Code") || undefined;
  const err = fromErrorReply(value, status);
  if (err) throw err;
  if (value === undefined) throw new SluiceClientError("internal", `${subject}: empty reply`);
  return value as T;
}
