import type { ResolvedLimits } from "../../machines/policy.js";
import type { ScopeContext } from "../../machines/scope.js";

/** A context packed for a long sleep: its JSON without the limits, and the (shared) limits object. */
interface Packed {
  json: string;
  limits: ResolvedLimits;
}

/**
 * Contexts of passivated scopes. A context put to sleep by passivation is packed
 * as JSON (a few hundred bytes of one-byte string, against about a kilobyte as an
 * object graph) beside a pointer to its limits, which the registry shares between
 * the scopes of a kind; it is unpacked on next use. Contexts restored from
 * snapshots stay objects, since replay updates them entry by entry.
 * JSON keeps every number of a context exactly (doubles round-trip) and its nulls.
 */
export class DormantStore {
  private readonly m = new Map<string, ScopeContext | Packed>();

  get size(): number {
    return this.m.size;
  }

  has(scope: string): boolean {
    return this.m.has(scope);
  }

  get(scope: string): ScopeContext | undefined {
    const v = this.m.get(scope);
    if (v === undefined || !("json" in v)) return v;
    return { ...(JSON.parse(v.json) as Omit<ScopeContext, "limits">), limits: v.limits };
  }

  /** Keep `ctx`; `pack` for a long sleep (passivation). */
  set(scope: string, ctx: ScopeContext, pack = false): void {
    if (!pack) {
      this.m.set(scope, ctx);
      return;
    }
    const { limits, ...rest } = ctx;
    this.m.set(scope, { json: JSON.stringify(rest), limits });
  }

  delete(scope: string): void {
    this.m.delete(scope);
  }

  keys(): IterableIterator<string> {
    return this.m.keys();
  }
}
