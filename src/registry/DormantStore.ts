import type { ResolvedLimits } from "../../machines/policy.js";
import type { ScopeContext } from "../../machines/scope.js";

/**
 * The values most dormant contexts hold in these fields; a packed context leaves out
 * every field that has its value here (about a third of the JSON of a key with a
 * rate limit and a budget: 328 bytes down to 209).
 */
const USUAL: Readonly<Record<string, unknown>> = {
  held: 0,
  breaker: null,
  pacing: null,
  ttft: null,
  itl: null,
  overloaded: false,
  latencyLimit: null,
  unreported: 0,
} satisfies Partial<ScopeContext>;

/**
 * A context packed for a long sleep: its JSON without the limits, the scope (the key it
 * is kept under) and the fields that hold their {@link USUAL} value, and the (shared) limits object.
 */
interface Packed {
  json: string;
  limits: ResolvedLimits;
}

/**
 * Contexts of passivated scopes. A context put to sleep by passivation is packed
 * as JSON (about 200 bytes of one-byte string, against about a kilobyte as an
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
    return { scope, ...USUAL, ...(JSON.parse(v.json) as Partial<ScopeContext>), limits: v.limits } as ScopeContext;
  }

  /** Keep `ctx`; `pack` for a long sleep (passivation). */
  set(scope: string, ctx: ScopeContext, pack = false): void {
    if (!pack) {
      this.m.set(scope, ctx);
      return;
    }
    const { limits, scope: named, ...rest } = ctx;
    const kept: Record<string, unknown> = {};
    if (named !== scope) kept.scope = named;
    for (const [field, value] of Object.entries(rest)) if (!Object.hasOwn(USUAL, field) || USUAL[field] !== value) kept[field] = value;
    this.m.set(scope, { json: JSON.stringify(kept), limits });
  }

  delete(scope: string): void {
    this.m.delete(scope);
  }

  keys(): IterableIterator<string> {
    return this.m.keys();
  }
}
