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

  /** Every stored snapshot. */
  async loadAll(): Promise<ScopeSnapshot[]> {
    const keys: string[] = [];
    for await (const k of await this.kv.keys("s.>")) keys.push(k);
    const out: ScopeSnapshot[] = [];
    for (let i = 0; i < keys.length; i += WRITE_CONCURRENCY) {
      const got = await Promise.all(keys.slice(i, i + WRITE_CONCURRENCY).map((k) => this.kv.get(k)));
      for (const e of got) {
        if (!e || e.operation !== "PUT" || e.length === 0) continue;
        const v = e.json<ScopeSnapshot>();
        if (v && typeof v.scope === "string" && typeof v.seq === "number") out.push(v);
      }
    }
    return out;
  }

  /**
   * The sequence of the last complete round: every scope changed by entries up to it has
   * a snapshot including them (a scope not written since did not change). Replay can
   * start after it for every scope. 0 when none.
   */
  async loadRoundSeq(): Promise<number> {
    const e = await this.kv.get(ROUND_KEY);
    if (!e || e.operation !== "PUT" || e.length === 0) return 0;
    const v = e.json<{ seq?: unknown }>();
    return typeof v.seq === "number" ? v.seq : 0;
  }

  async writeRoundSeq(seq: number): Promise<void> {
    await this.kv.put(ROUND_KEY, JSON.stringify({ seq }));
  }

  /** The policy set at run time, if any (not validated: the caller parses `doc`). */
  async loadPolicy(): Promise<StoredPolicy | undefined> {
    const e = await this.kv.get(POLICY_KEY);
    if (!e || e.operation !== "PUT" || e.length === 0) return undefined;
    const v = e.json<Partial<StoredPolicy>>();
    if (typeof v !== "object" || v === null || typeof v.setAt !== "number" || typeof v.base !== "string" || !("doc" in v)) return undefined;
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
