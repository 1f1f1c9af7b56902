/**
 * Scope snapshots in a JetStream KV bucket: one key per scope,
 * `s.<base64url(scope)>` (KV keys allow only `[-/_=.a-zA-Z0-9]`), value
 * `{ seq, scope, ctx }`: the scope's context with every journal entry up to `seq`
 * applied. `ctx: null` marks a scope that was dropped as pristine (defaults only).
 * Besides: `m.round` (the last complete round) and `m.policy` (the policy set at run time).
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { type KV, Kvm } from "@nats-io/kv";
import type { ScopeContext } from "../../machines/scope.js";

export const DEFAULT_STATE_BUCKET = "SLUICE_STATE";

/** Most puts in flight at once while writing one snapshot round. */
const WRITE_CONCURRENCY = 64;

/** Key of the last complete round's sequence (not a scope: scope keys start `s.`). */
const ROUND_KEY = "m.round";

/** Key of the policy document set at run time (`admin.policy.set`). */
const POLICY_KEY = "m.policy";

/**
 * A policy document set at run time, with what it replaced: `base` is the
 * fingerprint of the policy sluice was started with then (its SLUICE_POLICY
 * file), so a later start can tell whether that file was edited since.
 */
export interface StoredPolicy {
  doc: unknown;
  /** When it was set, ms epoch. */
  setAt: number;
  base: string;
}

export interface ScopeSnapshot {
  seq: number;
  scope: string;
  ctx: ScopeContext | null;
}

export function snapshotKey(scope: string): string {
  return `s.${Buffer.from(scope, "utf8").toString("base64url")}`;
}

export class SnapshotStore {
  private constructor(private readonly kv: KV, readonly bucket: string) {}

  /** Open the bucket, creating it when missing. */
  static async open(nc: NatsConnection, bucket = DEFAULT_STATE_BUCKET): Promise<SnapshotStore> {
    const kv = await new Kvm(nc).create(bucket, { history: 1 });
    return new SnapshotStore(kv, bucket);
  }

  /** Every stored snapshot (for tests and tools: a restart uses {@link forEach}). */
  async loadAll(): Promise<ScopeSnapshot[]> {
    const out: ScopeSnapshot[] = [];
    await this.forEach((s) => out.push(s));
    return out;
  }

  /**
   * Call `fn` with every stored snapshot, one at a time, in the order of the bucket's
   * stream; resolves with their number. Read as one stream (a KV watch of the last value
   * of each key) rather than a request per key: 300,000 snapshots took 24.7 s one `get`
   * at a time, 6.6 s this way (with the restore's packing; `.tmp/keysflood.mjs` scratch
   * script, then a restart).
   */
  async forEach(fn: (s: ScopeSnapshot) => void, onUnreadable?: (what: string) => void): Promise<number> {
    // The watch yields nothing for an empty bucket; its status says whether to wait at all.
    if ((await this.kv.status()).values === 0) return 0;
    const watch = await this.kv.watch({ key: ">" });
    let n = 0;
    try {
      for await (const e of watch) {
        if (e.key.startsWith("s.") && e.operation === "PUT" && e.length > 0) {
          // Anyone with access to the bucket can write it: a value that is not a snapshot is passed over, not fatal.
          const v = readJson(e) as Partial<ScopeSnapshot> | undefined;
          if (isObject(v) && typeof v.scope === "string" && typeof v.seq === "number" && Number.isFinite(v.seq) && "ctx" in v) {
            fn(v as ScopeSnapshot);
            n++;
          } else onUnreadable?.(`${e.key}: ${v === undefined ? "not JSON" : "not a snapshot ({ seq, scope, ctx })"}`);
        }
        // Pending 0: this was the last value stored when the watch began.
        if (!e.delta) break;
      }
    } finally {
      watch.stop();
    }
    return n;
  }

  /**
   * The sequence of the last complete round: every scope changed by entries up to it has
   * a snapshot including them (a scope not written since did not change). Replay can
   * start after it for every scope. 0 when none.
   */
  async loadRoundSeq(): Promise<number> {
    const e = await this.kv.get(ROUND_KEY);
    if (!e || e.operation !== "PUT" || e.length === 0) return 0;
    // Unreadable: 0, so that replay starts after the oldest snapshot instead (more entries, none missed).
    const v = readJson(e);
    return isObject(v) && typeof v.seq === "number" && Number.isFinite(v.seq) ? v.seq : 0;
  }

  async writeRoundSeq(seq: number): Promise<void> {
    await this.kv.put(ROUND_KEY, JSON.stringify({ seq }));
  }

  /** The policy set at run time, if any (not validated: the caller parses `doc`). */
  async loadPolicy(): Promise<StoredPolicy | undefined> {
    const e = await this.kv.get(POLICY_KEY);
    if (!e || e.operation !== "PUT" || e.length === 0) return undefined;
    const v = readJson(e) as Partial<StoredPolicy> | undefined;
    if (!isObject(v) || typeof v.setAt !== "number" || typeof v.base !== "string" || !("doc" in v)) return undefined;
    return v as StoredPolicy;
  }

  async writePolicy(p: StoredPolicy): Promise<void> {
    await this.kv.put(POLICY_KEY, JSON.stringify(p));
  }

  /** Forget the policy set at run time (the start policy replaced it). */
  async clearPolicy(): Promise<void> {
    await this.kv.delete(POLICY_KEY);
  }

  /** Write snapshots, a bounded number at a time; rejects on the first failure. */
  async writeAll(items: readonly ScopeSnapshot[]): Promise<void> {
    for (let i = 0; i < items.length; i += WRITE_CONCURRENCY) {
      await Promise.all(items.slice(i, i + WRITE_CONCURRENCY).map((s) => this.kv.put(snapshotKey(s.scope), JSON.stringify(s))));
    }
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** A KV value's JSON, or undefined where it is not JSON. */
function readJson(e: { json<T>(): T }): unknown {
  try {
    return e.json<unknown>();
  } catch {
    return undefined;
  }
}
