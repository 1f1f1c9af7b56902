/**
 * The peer: what a user would pick instead of sluice, rate-limiter-flexible,
 * doing the checks sluice's key and model request rates do. One request is two
 * `consume` calls, on the key's limiter and on the model's, issued together
 * (the faster way for a networked store: one round trip, not two); it passes
 * when both pass. Limits are those of the bench policy (`RATES`): 600,000 rpm
 * per key (2 rpm for the hot 1%), 60,000,000 rpm per model.
 *
 * rate-limiter-flexible counts fixed windows (`points` per `duration` seconds),
 * sluice refills token buckets; at these limits both admit the same requests.
 */
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";
import { DEFAULT_WORKLOAD, RATES, admitBody, isHotKey, type WorkloadShape } from "./workload.js";

/** One request of the workload as the peers see it. */
export interface PeerItem {
  key: string;
  model: string;
  hot: boolean;
}

/** The first `count` requests of the workload (the same sequence the NATS generators send). */
export function peerItems(count: number, shape: WorkloadShape = DEFAULT_WORKLOAD): PeerItem[] {
  return Array.from({ length: count }, (_, i) => {
    const b = admitBody(i, shape);
    return { key: b.key, model: b.model, hot: isHotKey(i % shape.keys, shape) };
  });
}

export interface PeerLimiters {
  key: RateLimiterAbstract;
  hotKey: RateLimiterAbstract;
  model: RateLimiterAbstract;
}

const perMinute = (points: number) => ({ points, duration: 60 });

/** `RateLimiterRedis` limiters on an ioredis client (the `storeClient`). */
export function redisLimiters(storeClient: unknown): PeerLimiters {
  return {
    key: new RateLimiterRedis({ storeClient, keyPrefix: "bench-key", ...perMinute(RATES.keyRpm) }),
    hotKey: new RateLimiterRedis({ storeClient, keyPrefix: "bench-hot", ...perMinute(RATES.hotKeyRpm) }),
    model: new RateLimiterRedis({ storeClient, keyPrefix: "bench-model", ...perMinute(RATES.modelRpm) }),
  };
}

/** `RateLimiterMemory` limiters (in the process, no store). */
export function memoryLimiters(): PeerLimiters {
  return {
    key: new RateLimiterMemory({ keyPrefix: "bench-key", ...perMinute(RATES.keyRpm) }),
    hotKey: new RateLimiterMemory({ keyPrefix: "bench-hot", ...perMinute(RATES.hotKeyRpm) }),
    model: new RateLimiterMemory({ keyPrefix: "bench-model", ...perMinute(RATES.modelRpm) }),
  };
}

/** A refusal (`RateLimiterRes`) is `false`; a store error stays an error. */
const passed = (p: Promise<unknown>): Promise<boolean> =>
  p.then(
    () => true,
    (e: unknown) => {
      if (e instanceof RateLimiterRes) return false;
      throw e;
    },
  );

/** Both checks of one request; resolves true when both pass. */
export async function peerCheck(l: PeerLimiters, item: PeerItem): Promise<boolean> {
  const [k, m] = await Promise.all([passed((item.hot ? l.hotKey : l.key).consume(item.key)), passed(l.model.consume(item.model))]);
  return k && m;
}
