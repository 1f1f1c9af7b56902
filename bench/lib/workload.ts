/**
 * The bench workload: the policy sluice runs with and the admission requests the
 * load generator sends. Both sides derive everything from these functions, so
 * the orchestrator and the load generator agree without passing data around.
 *
 * Mix: requests rotate over 10,000 keys, 20 models and 50 teams. Key limits are
 * high (rpm 600,000) so that nearly everything is admitted while the buckets
 * still do their arithmetic; 1% of the keys are "hot" with rpm 2 so that the
 * reject path runs too. Leases live 2 s (no reports are sent), so concurrency
 * slots and budget reservations free themselves by expiry.
 */

export interface WorkloadShape {
  keys: number;
  models: number;
  teams: number;
  /** Every `hotEvery`-th key gets a low rpm (0: none). */
  hotEvery: number;
}

export const DEFAULT_WORKLOAD: WorkloadShape = { keys: 10_000, models: 20, teams: 50, hotEvery: 100 };

const pad = (n: number, width: number): string => String(n).padStart(width, "0");
export const keyName = (i: number): string => `key-${pad(i, 5)}`;
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
 * `count` pre-encoded batch bodies of `size` requests each (for `admit.batch`;
 * not measured by the first bench, here so that the batch mode is one flag away).
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

/** The policy document sluice is started with (SLUICE_POLICY). */
export function benchPolicy(shape: WorkloadShape = DEFAULT_WORKLOAD): Record<string, unknown> {
  const keyOverrides: Record<string, unknown> = {};
  if (shape.hotEvery > 0) for (let i = 0; i < shape.keys; i += shape.hotEvery) keyOverrides[keyName(i)] = { rpm: 2 };
  return {
    leaseTtlMs: 2_000,
    scopes: {
      key: {
        default: { rpm: 600_000, tpm: 1_000_000_000, concurrency: 10_000 },
        overrides: keyOverrides,
      },
      model: {
        default: {
          rpm: 60_000_000,
          tpm: 100_000_000_000,
          concurrency: 1_000_000,
          breaker: { errorRate: 0.5, windowMs: 60_000, minRequests: 100, cooldownMs: 10_000, probes: 1 },
          adaptive: { baseMs: 200, maxMs: 5_000, factor: 2, recovery: 0.8, recoverAfter: 5 },
          latency: { ttftMs: 10_000, itlMs: 500, tauMs: 15_000 },
        },
      },
      team: {
        default: { budget: { limit: 1_000_000_000, period: "day", calendar: true } },
      },
    },
  };
}
