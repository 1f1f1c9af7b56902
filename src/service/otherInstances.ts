import type { NatsConnection } from "@nats-io/transport-node";
import { type Clock, systemClock } from "../clock.js";
import type { Logger } from "../log.js";
import { permissionDenied } from "../transport/permissionDenied.js";

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
  } catch (e) {
    // Not allowed to ask: say so (sluice needs it), rather than find nobody.
    if (permissionDenied(e) !== undefined) throw e;
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
  } catch (e) {
    if (permissionDenied(e) !== undefined) throw e;
    // No responders ends the iteration with an error: nothing (more) found.
  }
  return found;
}

/** Defaults of {@link waitUntilAlone}. */
export const DEFAULT_STANDBY = {
  /** Time between looks, ms. */
  pollMs: 500,
  /** Looks in a row that must find no other instance: one missed answer (a pause) is not a stop. */
  quietPolls: 3,
} as const;

/**
 * Wait until no other sluice serves `prefix` (a standby, `SLUICE_STANDBY=on`): looks
 * every `pollMs`, and returns once `quietPolls` looks in a row found none, or as soon
 * as `stopped()` (the standby itself is told to stop). Returns whether it is alone.
 */
export async function waitUntilAlone(
  nc: NatsConnection,
  prefix: string,
  opts: { pollMs?: number; quietPolls?: number; stopped?: () => boolean } = {},
): Promise<boolean> {
  const pollMs = opts.pollMs ?? DEFAULT_STANDBY.pollMs;
  const needed = opts.quietPolls ?? DEFAULT_STANDBY.quietPolls;
  let quiet = 0;
  while (!opts.stopped?.()) {
    quiet = (await otherInstances(nc, prefix)).length === 0 ? quiet + 1 : 0;
    if (quiet >= needed) return true;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  return false;
}

/** Defaults of {@link TwinWatchOptions}. */
export const DEFAULT_TWIN_WATCH = {
  /** Time between checks, ms. */
  everyMs: 30_000,
  /** While a twin stays, the error is logged again this often, ms. */
  repeatMs: 600_000,
} as const;

export interface TwinWatchOptions {
  nc: NatsConnection;
  prefix: string;
  /** This instance's own micro service id (it answers discovery too); undefined before it serves. */
  ownId: () => string | undefined;
  logger: Logger;
  clock?: Clock;
  everyMs?: number;
  repeatMs?: number;
}

/**
 * Looks, while sluice serves, for another sluice on its prefix: the check at start
 * ({@link otherInstances}) cannot see one started in the same instant, nor one started
 * later by a tool that does not check. Each finding is logged as an error naming the
 * other (again every `repeatMs` while it stays), since from then on both enforce every
 * limit, admitting up to twice what the policy allows; which one to stop is the
 * operator's call.
 */
export class TwinWatch {
  private timer: unknown;
  private stopped = false;
  private lastLoggedAt = Number.NEGATIVE_INFINITY;
  private lastIds = "";
  /** Other instances on the prefix at the last check. */
  twins: OtherInstance[] = [];

  constructor(private readonly opts: TwinWatchOptions) {}

  start(): void {
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) (this.opts.clock ?? systemClock).clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Look now; logs an error when another instance serves the prefix. */
  async check(): Promise<OtherInstance[]> {
    const own = this.opts.ownId();
    const found = (await otherInstances(this.opts.nc, this.opts.prefix)).filter((o) => o.id !== own);
    this.twins = found;
    const ids = found.map((o) => o.id).sort().join(",");
    const now = (this.opts.clock ?? systemClock).now();
    if (found.length > 0 && (ids !== this.lastIds || now - this.lastLoggedAt >= (this.opts.repeatMs ?? DEFAULT_TWIN_WATCH.repeatMs))) {
      this.lastLoggedAt = now;
      this.opts.logger.error(
        { prefix: this.opts.prefix, others: found },
        "another sluice serves this prefix too: the two split the requests and each enforces every limit, admitting up to twice what the policy allows; stop one of them",
      );
    }
    this.lastIds = ids;
    return found;
  }

  private schedule(): void {
    if (this.stopped) return;
    const clock = this.opts.clock ?? systemClock;
    this.timer = clock.setTimeout(() => {
      this.check()
        .catch((err) => this.opts.logger.warn({ err }, "looking for another sluice on the prefix failed"))
        .finally(() => this.schedule());
    }, this.opts.everyMs ?? DEFAULT_TWIN_WATCH.everyMs);
  }
}
