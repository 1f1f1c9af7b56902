import { DEFAULT_MAX_LIVE_SCOPES, DEFAULT_MAX_SCOPES } from "./ScopeRegistry.js";

/** The caps on scopes that fit one heap. */
export interface ScopeCaps {
  /** Most scopes, live and passivated together. */
  maxScopes: number;
  /** Most live scope actors. */
  maxLive: number;
}

/** The old generation's ceiling the default caps were measured for, MB (npm start's `--max-old-space-size`). */
export const REFERENCE_HEAP_MB = 1280;

/** Fewest scopes the caps allow, however small the heap: a service that refuses its tenth key helps nobody. */
const FLOOR: ScopeCaps = { maxScopes: 10_000, maxLive: 1_000 };

/**
 * The caps on scopes for an old generation of `ceilingBytes`: {@link DEFAULT_MAX_SCOPES}
 * and {@link DEFAULT_MAX_LIVE_SCOPES} (measured for 1280 MB: ~4.8 KB per live actor, ~220 B
 * per passivated scope) in proportion to it. So `SLUICE_MAX_HEAP_MB=4096` holds 3.2 times
 * the scopes without raising two more settings with it, and a smaller heap gets caps it can
 * hold rather than ones the heap watch (`src/service/HeapWatch.ts`) has to enforce by refusing admissions.
 */
export function scopeCapsFor(ceilingBytes: number): ScopeCaps {
  const share = ceilingBytes / (REFERENCE_HEAP_MB * 2 ** 20);
  return {
    maxScopes: Math.max(FLOOR.maxScopes, Math.floor(DEFAULT_MAX_SCOPES * share)),
    maxLive: Math.max(FLOOR.maxLive, Math.floor(DEFAULT_MAX_LIVE_SCOPES * share)),
  };
}
