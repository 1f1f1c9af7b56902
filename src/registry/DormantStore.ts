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
 * A context packed for a long sleep, as JSON: its JSON without the limits, the scope (the
 * key it is kept under) and the fields that hold their {@link USUAL} value, and the (shared)
 * limits object. Kept for contexts a {@link Shaped} one cannot hold.
 */
interface Packed {
  json: string;
  limits: ResolvedLimits;
}

/**
 * What contexts of one structure share: the packed JSON with every number taken out
 * (cut where they were), and the limits. Scopes of a kind have one limits object and,
 * between them, a handful of structures.
 */
interface Shape {
  pieces: string[];
  limits: ResolvedLimits;
}

/** A context packed as its {@link Shape} and its numbers, in order: a flat array of unboxed doubles. */
interface Shaped {
  shape: Shape;
  values: number[];
}

/**
 * Stands in for a number in a shape's JSON. A context holding this string, or a string
 * whose JSON would hold the mark's, is packed as plain JSON.
 */
const MARK = "\u0000#";
const MARK_JSON = JSON.stringify(MARK);
/** Most structures kept per limits object; contexts of further ones are packed as plain JSON. */
const MAX_SHAPES_PER_LIMITS = 256;

/**
 * Contexts of passivated scopes. A context put to sleep by passivation is packed:
 * its structure (the JSON of the fields it holds, without their numbers) is shared
 * with the other contexts of that structure and limits, and its own are only its
 * numbers, in a flat array. A scope of the memory series' policy (a rate limit and a
 * budget) keeps 7 numbers: 56 bytes of doubles where its JSON was 177 characters.
 * It is unpacked on next use. Contexts restored from snapshots are packed the same
 * way; those a replay updates stay objects until it is done (see `Restorer.finish`).
 * Numbers come back exactly (the shortest text that reads back as the same double,
 * as in JSON), as do nulls, booleans and strings.
 */
export class DormantStore {
  private readonly m = new Map<string, ScopeContext | Packed | Shaped>();
  private readonly shapes = new WeakMap<ResolvedLimits, Map<string, Shape>>();

  get size(): number {
    return this.m.size;
  }

  has(scope: string): boolean {
    return this.m.has(scope);
  }

  get(scope: string): ScopeContext | undefined {
    const v = this.m.get(scope);
    if (v === undefined) return undefined;
    if ("shape" in v) {
      const { pieces, limits } = v.shape;
      let json = pieces[0]!;
      for (let i = 0; i < v.values.length; i++) json += String(v.values[i]) + pieces[i + 1]!;
      return { scope, ...USUAL, ...(JSON.parse(json) as Partial<ScopeContext>), limits } as ScopeContext;
    }
    if ("json" in v) return { scope, ...USUAL, ...(JSON.parse(v.json) as Partial<ScopeContext>), limits: v.limits } as ScopeContext;
    return v;
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
    const values: number[] = [];
    let plain = false;
    const template = JSON.stringify(kept, (_key, value: unknown) => {
      if (typeof value === "number" && Number.isFinite(value)) {
        values.push(value);
        return MARK;
      }
      if (value === MARK) plain = true;
      return value;
    });
    const shape = plain ? undefined : this.shapeOf(template, limits);
    // A string ending in the mark's text after a quote would cut the JSON once more: such a context goes as JSON.
    if (!shape || shape.pieces.length !== values.length + 1) {
      this.m.set(scope, { json: JSON.stringify(kept), limits });
      return;
    }
    this.m.set(scope, { shape, values: values.slice() });
  }

  private shapeOf(template: string, limits: ResolvedLimits): Shape | undefined {
    // A context from an old snapshot may carry no limits (they come from the policy on waking).
    if (typeof limits !== "object" || limits === null) return undefined;
    let byTemplate = this.shapes.get(limits);
    if (!byTemplate) this.shapes.set(limits, (byTemplate = new Map()));
    let shape = byTemplate.get(template);
    if (!shape) {
      if (byTemplate.size >= MAX_SHAPES_PER_LIMITS) return undefined;
      byTemplate.set(template, (shape = { pieces: template.split(MARK_JSON), limits }));
    }
    return shape;
  }

  delete(scope: string): void {
    this.m.delete(scope);
  }

  keys(): IterableIterator<string> {
    return this.m.keys();
  }
}
