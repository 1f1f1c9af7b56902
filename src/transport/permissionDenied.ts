import { errors as natsErrors } from "@nats-io/transport-node";

/**
 * What NATS refused, where `e` (or one of its causes) is a permissions violation:
 * `publish <subject>` or `subscribe <subject>`; undefined for any other error. A request
 * whose reply inbox may not be subscribed fails this way, its message naming the inbox.
 */
export function permissionDenied(e: unknown): string | undefined {
  for (let c = e, depth = 0; c instanceof Error && depth < 8; c = c.cause, depth++) {
    if (c instanceof natsErrors.PermissionViolationError) return `${c.operation === "publish" ? "publish" : "subscribe"} ${c.subject}`;
    const m = /Permissions Violation for (Publish|Subscription) to "([^"]+)"/i.exec(c.message);
    if (m) return `${m[1]!.toLowerCase() === "publish" ? "publish" : "subscribe"} ${m[2]}`;
  }
  return undefined;
}
