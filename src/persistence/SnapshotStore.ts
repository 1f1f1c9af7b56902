/**
 * Scope snapshots in a JetStream KV bucket: one key per scope,
 * `s.<base64url(scope)>` (KV keys allow only `[-/_=.a-zA-Z0-9]`), value
 * `{ seq, scope, lim, ctx }`: the scope's context with every journal entry up to `seq`
 * applied, without its limits, which are stored once for all the scopes that share
 * them, under `l.<lim>` (`lim` is a hash of their JSON). `ctx: null` marks a scope that
 * was dropped as pristine (defaults only). A snapshot without `lim` (written before
 * limits were stored apart) carries its limits in `ctx.limits`.
 * Besides: `m.round` (the last complete round) and `m.policy` (the policy set at run time).
 */
import { createHash } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { type KV, Kvm } from "@nats-io/kv";
import type { ResolvedLimits } from "../../machines/policy.js";
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

/** Start of the keys of stored limits (`l.<id>`). */
const LIMITS_PREFIX = "l.";

export interface ScopeSnapshot {
  seq: number;
  scope: string;
  ctx: ScopeContext | null;
  /**
   * As read back: the id of the limits stored under `l.<id>`, which `ctx` is without. (To
   * write, give `ctx` its limits: {@link SnapshotStore.writeAll} stores them apart.)
   */
  lim?: string;
}

/** The id of limits whose JSON is `json`: a content hash, so equal limits share one stored copy. */
export function limitsId(json: string): string {
  return createHash("sha256").update(json).digest("base64url").slice(0, 22);
}

export function snapshotKey(scope: string): string {
  return `s.${Buffer.from(scope, "utf8").toString("base64url")}`;
}

export class SnapshotStore {
  /** Ids of limits objects met so far: a scope's limits are one object, shared by every context given them. */
  private readonly idOf = new WeakMap<ResolvedLimits, { id: string; json: string }>();
  /** Ids of the limits known to be stored (written by this store, or read back intact). */
  private readonly stored = new Set<string>();

  private constructor(private readonly kv: KV, readonly bucket: string) {}

  /** Open the bucket, creating it when missing. */
  static async open(nc: NatsConnection, bucket = DEFAULT_STATE_BUCKET): Promise<SnapshotStore> {
    const kv = await new Kvm(nc).create(bucket, { history: 1 });
    return new SnapshotStore(kv, bucket);
  }

  /** Every stored snapshot, each context with its limits (for tests and tools: a restart uses {@link forEach}). */
  async loadAll(): Promise<ScopeSnapshot[]> {
    const limits = await this.loadLimits();
    const out: ScopeSnapshot[] = [];
    await this.forEach((s) => {
      if (s.lim !== undefined && s.ctx) {
        s.ctx.limits = limits.get(s.lim) as ResolvedLimits;
        delete s.lim;
      }
      out.push(s);
    });
    return out;
  }

  /**
   * Every stored limits object, by id, as stored (not validated: the restore checks each
   * once). A restart reads them before the snapshots that name them.
   */
  async loadLimits(): Promise<Map<string, unknown>> {
    const out = new Map<string, unknown>();
    if ((await this.kv.status()).values === 0) return out;
    const keys: string[] = [];
    for await (const k of await this.kv.keys(`${LIMITS_PREFIX}>`)) keys.push(k);
    for (let i = 0; i < keys.length; i += WRITE_CONCURRENCY) {
      await Promise.all(
        keys.slice(i, i + WRITE_CONCURRENCY).map(async (key) => {
          const e = await this.kv.get(key);
          if (!e || e.operation !== "PUT" || e.length === 0) return;
          const v = readJson(e);
          if (v === undefined) return;
          const id = key.slice(LIMITS_PREFIX.length);
          out.set(id, v);
          // Intact: need not be written again. (One that was tampered with is, when next used.)
          if (limitsId(JSON.stringify(v)) === id) this.stored.add(id);
        }),
      );
    }
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
          if (isObject(v) && typeof v.scope === "string" && typeof v.seq === "number" && Number.isFinite(v.seq) && "ctx" in v && (v.lim === undefined || typeof v.lim === "string")) {
            fn(v as ScopeSnapshot);
            n++;
          } else onUnreadable?.(`${e.key}: ${v === undefined ? "not JSON" : "not a snapshot ({ seq, scope, lim, ctx })"}`);
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

  /**
   * Write snapshots, a bounded number at a time; rejects on the first failure. Each
   * context's limits are stored apart, once per distinct limits (`l.<id>`), before the
   * first snapshot that names them: they were about half of every snapshot's bytes.
   */
  async writeAll(items: readonly ScopeSnapshot[]): Promise<void> {
    const bodies: string[] = new Array(items.length);
    const fresh = new Map<string, string>();
    for (let i = 0; i < items.length; i++) {
      const s = items[i]!;
      const limits = s.ctx?.limits;
      if (!s.ctx || !limits) {
        bodies[i] = JSON.stringify(s);
        continue;
      }
      let known = this.idOf.get(limits);
      if (!known) {
        const json = JSON.stringify(limits);
        this.idOf.set(limits, (known = { id: limitsId(json), json }));
      }
      if (!this.stored.has(known.id)) fresh.set(known.id, known.json);
      const { limits: _apart, ...ctx } = s.ctx;
      bodies[i] = JSON.stringify({ seq: s.seq, scope: s.scope, lim: known.id, ctx });
    }
    await Promise.all([...fresh].map(([id, json]) => this.kv.put(`${LIMITS_PREFIX}${id}`, json)));
    for (const id of fresh.keys()) this.stored.add(id);
    for (let i = 0; i < items.length; i += WRITE_CONCURRENCY) {
      const end = Math.min(items.length, i + WRITE_CONCURRENCY);
      const puts: Promise<unknown>[] = [];
      for (let j = i; j < end; j++) puts.push(this.kv.put(snapshotKey(items[j]!.scope), bodies[j]!));
      await Promise.all(puts);
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
