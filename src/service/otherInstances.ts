import type { NatsConnection } from "@nats-io/transport-node";

/** Defaults of {@link otherInstances}. */
export const DEFAULT_INSTANCE_CHECK = {
  /** Longest wait for the first answer, ms (none comes at all where no service is named sluice: NATS says so at once). */
  maxWaitMs: 2_000,
  /** After an answer, how long a silence ends the wait, ms. */
  stallMs: 200,
} as const;

/** A sluice found serving the prefix: its micro service id and version. */
export interface OtherInstance {
  id: string;
  version?: string;
}

/**
 * The sluice services already serving `prefix` on this NATS system, found by micro
 * discovery (`$SRV.INFO.sluice`, answered by every instance, whatever its prefix): those
 * with a `<prefix>.admit` endpoint. Two instances on one prefix share the queue group and
 * split the requests, but not the state, so each enforces every limit on its own and
 * together they admit twice what the policy allows, with nothing to say so. The check is
 * made before serving; two instances started in the same instant can both pass it.
 */
export async function otherInstances(
  nc: NatsConnection,
  prefix: string,
  opts: { maxWaitMs?: number; stallMs?: number } = {},
): Promise<OtherInstance[]> {
  const found: OtherInstance[] = [];
  let replies: AsyncIterable<{ data: Uint8Array; json<T>(): T }>;
  try {
    replies = await nc.requestMany("$SRV.INFO.sluice", undefined, {
      strategy: "stall",
      maxWait: opts.maxWaitMs ?? DEFAULT_INSTANCE_CHECK.maxWaitMs,
      stall: opts.stallMs ?? DEFAULT_INSTANCE_CHECK.stallMs,
    });
  } catch {
    return found; // no responders: no sluice at all
  }
  try {
    for await (const m of replies) {
      if (m.data.length === 0) continue; // a status (no responders)
      let info: { id?: unknown; version?: unknown; endpoints?: unknown };
      try {
        info = m.json();
      } catch {
        continue;
      }
      const endpoints = Array.isArray(info.endpoints) ? (info.endpoints as { subject?: unknown }[]) : [];
      if (typeof info.id !== "string" || !endpoints.some((e) => e?.subject === `${prefix}.admit`)) continue;
      found.push({ id: info.id, ...(typeof info.version === "string" ? { version: info.version } : {}) });
    }
  } catch {
    // No responders ends the iteration with an error: nothing (more) found.
  }
  return found;
}
