/**
 * The bench workload: the policy sluice runs with and the admission requests the
 * load generator sends. Both sides derive everything from these functions, so
 * the orchestrator and the load generator agree without passing data around.
 *
 * Mix: requests rotate over 10,000 keys, 20 models and 50 teams. Key limits are
 * high (rpm 600,000) so that nearly everything is admitted while the buckets
 * still do their arithmetic; 1% of the keys are "hot" with rpm 2 so that the
 * reject path runs too. Leases live 2 s (no reports are sent), so concurrency
 * slots and budget reservations free themselves by expiry. About 99% of the
 * decisions are admits; the table's `admitted` column shows it.
 */

export interface WorkloadShape {
  keys: number;
  models: number;
  teams: number;
  /** Every `hotEvery`-th key gets a low rpm (0: none). */
  hotEvery: number;
}

export const DEFAULT_WORKLOAD: WorkloadShape = { keys: 10_000, models: 20, teams: 50, hotEvery: 100 };

/** Request rates of the bench policy; the peers (rate-limiter-flexible, the plain bucket) use the same. */
export const RATES = { keyRpm: 600_000, hotKeyRpm: 2, modelRpm: 60_000_000 } as const;

const pad = (n: number, width: number): string => String(n).padStart(width, "0");
export const keyName = (i: number): string => `key-${pad(i, 5)}`;
/** Is key number `i` one of the few with a low rpm (so that the reject path runs)? */
export const isHotKey = (i: number, shape: WorkloadShape = DEFAULT_WORKLOAD): boolean => shape.hotEvery > 0 && i % shape.hotEvery === 0;
export const modelName = (i: number): string => `model-${pad(i, 2)}`;
export const teamName = (i: number): string => `team-${pad(i, 2)}`;

/** The admission request body number `i` (deterministic). */
export interface AdmitBody {
  key: string;
  model: string;
  tokens: number;
  cost: number;
  scopes: { team: string };
}

export function admitBody(i: number, shape: WorkloadShape = DEFAULT_WORKLOAD): AdmitBody {
  // The peers (bench/lib/peer.ts, bench/lib/plainBucket.ts) tell hot keys by isHotKey(i % shape.keys).
  const tokens = 100 + ((i * 37) % 20) * 100; // 100..2000
  return {
    key: keyName(i % shape.keys),
    // Strides co-prime-ish with the key count so that a key is not always paired with one model.
    model: modelName(((i * 7) + Math.floor(i / shape.keys)) % shape.models),
    tokens,
    cost: tokens * 0.000_01,
    scopes: { team: teamName(((i * 13) + Math.floor(i / shape.keys) * 3) % shape.teams) },
  };
}

/**
 * `count` pre-encoded single-admission bodies. The generator rotates over them,
 * so encoding costs nothing during the measurement. Use a multiple of the key
 * count so every key is covered.
 */
export function admitPayloads(count: number, shape: WorkloadShape = DEFAULT_WORKLOAD): Uint8Array[] {
  const enc = new TextEncoder();
  const out: Uint8Array[] = new Array(count);
  for (let i = 0; i < count; i++) out[i] = enc.encode(JSON.stringify(admitBody(i, shape)));
  return out;
}

/**
 * `count` pre-encoded batch bodies of `size` requests each (for `admit.batch`).
 */
export function batchPayloads(count: number, size: number, shape: WorkloadShape = DEFAULT_WORKLOAD): Uint8Array[] {
  const enc = new TextEncoder();
  const out: Uint8Array[] = new Array(count);
  let n = 0;
  for (let i = 0; i < count; i++) {
    const batch: AdmitBody[] = [];
    for (let j = 0; j < size; j++) batch.push(admitBody(n++, shape));
    out[i] = enc.encode(JSON.stringify(batch));
  }
  return out;
}

/** Lease lifetime of the bench policy, ms: a run's leases are all settled this long after it ends. */
export const BENCH_LEASE_TTL_MS = 2_000;

/** The policy document sluice is started with (SLUICE_POLICY). */
export function benchPolicy(shape: WorkloadShape = DEFAULT_WORKLOAD): Record<string, unknown> {
  const keyOverrides: Record<string, unknown> = {};
  for (let i = 0; i < shape.keys; i++) if (isHotKey(i, shape)) keyOverrides[keyName(i)] = { rpm: RATES.hotKeyRpm };
  return {
    leaseTtlMs: BENCH_LEASE_TTL_MS,
    scopes: {
      key: {
        default: { rpm: RATES.keyRpm, tpm: 1_000_000_000, concurrency: 10_000 },
        overrides: keyOverrides,
      },
      model: {
        default: {
          rpm: RATES.modelRpm,
          tpm: 100_000_000_000,
          concurrency: 1_000_000,
          breaker: { errorRate: 0.5, windowMs: 60_000, minRequests: 100, cooldownMs: 10_000, probes: 1 },
          adaptive: { baseMs: 200, maxMs: 5_000, factor: 2, recovery: 0.8, recoverAfter: 5 },
          // The adaptive limit grows only with reports, and the bench sends none: start it (and cap it) at the
          // model's concurrency, else 16 slots per model held for a lease's 2 s would refuse nearly everything.
          latency: { ttftMs: 10_000, itlMs: 500, tauMs: 15_000, initialConcurrency: 1_000_000, maxConcurrency: 1_000_000 },
        },
      },
      team: {
        default: { budget: { limit: 1_000_000_000, period: "day", calendar: true } },
      },
    },
  };
}
