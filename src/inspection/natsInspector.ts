/**
 * XState inspection over NATS (`SLUICE_INSPECT=nats`): an inspection observer
 * for the scope actors that publishes each `@xstate.event` and `@xstate.snapshot`
 * on `<p>.inspect.events.<kind>.<value>` (value encoded with
 * `encodeSubjectToken`), as JSON:
 *
 * ```json
 * { "ts": 1763900000000, "scope": "key:acme", "type": "@xstate.event", "event": { "type": "admit", … } }
 * { "ts": 1763900000000, "scope": "key:acme", "type": "@xstate.snapshot", "event": { … },
 *   "snapshot": { "value": "closed", "context": { … } } }
 * ```
 *
 * It runs inside the actors' event processing, so it never throws, drops
 * everything while the connection is closed or draining, and drops what goes
 * over a rate cap rather than crowd out the decisions.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { InspectionEvent } from "xstate";
import { type Clock, systemClock } from "../clock.js";
import { DEFAULT_CONFIG } from "../config.js";
import { encodeSubjectToken } from "../protocol/subjectToken.js";

/** Defaults of {@link NatsInspectorOptions}. */
export const DEFAULT_NATS_INSPECTOR = {
  /** Most messages per second; past it inspection events are dropped (and counted). */
  maxPerSecond: 2000,
  /** Largest message body, in characters of JSON; larger ones are dropped (NATS's default max_payload is 1 MiB). */
  maxBytes: 512 * 1024,
} as const;

/** Options of {@link createNatsInspector}. */
export interface NatsInspectorOptions {
  nc: NatsConnection;
  /** Subject prefix. Default `sluice`. */
  prefix?: string;
  /** Source of `ts` in the bodies. Default the system clock. */
  clock?: Pick<Clock, "now">;
  /** Rate cap, messages per second (bursts up to the same number). Default 2000. */
  maxPerSecond?: number;
  /** Largest body, characters of JSON. Default 512 Ki. */
  maxBytes?: number;
}

/** The body of one inspection message. */
export interface InspectionMessage {
  ts: number;
  scope: string;
  type: "@xstate.event" | "@xstate.snapshot";
  event?: unknown;
  snapshot?: { value: unknown; context: unknown };
}

/** A NATS inspection observer. */
export interface NatsInspector {
  /** Give this to the service (`inspect` option). */
  inspect: (event: InspectionEvent) => void;
  /** Messages published and dropped (closed connection, rate cap, size, serialisation). */
  stats(): { published: number; dropped: number };
}

/** Make the observer. */
export function createNatsInspector(opts: NatsInspectorOptions): NatsInspector {
  const { nc } = opts;
  const prefix = opts.prefix ?? DEFAULT_CONFIG.prefix;
  const clock = opts.clock ?? systemClock;
  const rate = opts.maxPerSecond ?? DEFAULT_NATS_INSPECTOR.maxPerSecond;
  const maxBytes = opts.maxBytes ?? DEFAULT_NATS_INSPECTOR.maxBytes;
  const subjects = new Map<string, string>();
  let published = 0;
  let dropped = 0;
  // Token bucket on process time (performance.now()): the cap is about this process's output, not domain time.
  let tokens = rate;
  let refilledAt = performance.now();

  const take = (): boolean => {
    const t = performance.now();
    tokens = Math.min(rate, tokens + ((t - refilledAt) * rate) / 1000);
    refilledAt = t;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };

  const subjectOf = (scope: string): string => {
    let subject = subjects.get(scope);
    if (subject === undefined) {
      const i = scope.indexOf(":");
      subject = `${prefix}.inspect.events.${encodeSubjectToken(scope.slice(0, i))}.${encodeSubjectToken(scope.slice(i + 1))}`;
      if (subjects.size < 100_000) subjects.set(scope, subject);
    }
    return subject;
  };

  const inspect = (ev: InspectionEvent): void => {
    if (ev.type !== "@xstate.event" && ev.type !== "@xstate.snapshot") return;
    try {
      const scope = (ev.actorRef as { id?: unknown }).id;
      if (typeof scope !== "string" || !scope.includes(":")) return;
      if (nc.isClosed() || nc.isDraining() || !take()) {
        dropped++;
        return;
      }
      const body: InspectionMessage = { ts: clock.now(), scope, type: ev.type, event: ev.event };
      if (ev.type === "@xstate.snapshot") {
        const snap = ev.snapshot as { value?: unknown; context?: unknown };
        // Scopes without a breaker run as transition actors, which have no state value; theirs is `closed`.
        body.snapshot = { value: snap.value ?? "closed", context: snap.context };
      }
      const json = JSON.stringify(body);
      if (json.length > maxBytes) {
        dropped++;
        return;
      }
      nc.publish(subjectOf(scope), json);
      published++;
    } catch {
      // Never into the actor: a cycle in an event, a connection closing under us, … costs one message.
      dropped++;
    }
  };

  return { inspect, stats: () => ({ published, dropped }) };
}
