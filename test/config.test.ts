import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";

describe("config from the environment", () => {
  it("defaults to prefix sluice with its journal stream and state bucket", () => {
    const c = loadConfig({});
    expect(c.prefix).toBe("sluice");
    expect(c.persistMode).toBe("auto");
    expect(c.persistence).toMatchObject({ journalStream: "SLUICE_JOURNAL", stateBucket: "SLUICE_STATE", snapshotMs: 5_000 });
  });

  it("gives every other prefix a stream and bucket of its own, unless they are named", () => {
    // Two deployments on one NATS server must never restore each other's state.
    expect(loadConfig({ SLUICE_PREFIX: "staging.sluice" }).persistence).toMatchObject({
      journalStream: "SLUICE_JOURNAL_staging_sluice",
      stateBucket: "SLUICE_STATE_staging_sluice",
    });
    expect(loadConfig({ SLUICE_PREFIX: "acme", SLUICE_JOURNAL_STREAM: "J", SLUICE_STATE_BUCKET: "S" }).persistence).toMatchObject({ journalStream: "J", stateBucket: "S" });
    expect(loadConfig({ SLUICE_PERSIST: "off" }).persistence).toBeUndefined();
  });

  it("refuses a bad value naming the variable and what it got", () => {
    expect(() => loadConfig({ SLUICE_SNAPSHOT_MS: "abc" })).toThrow(ConfigError);
    expect(() => loadConfig({ SLUICE_SNAPSHOT_MS: "abc" })).toThrow(/^SLUICE_SNAPSHOT_MS="abc": /);
    expect(() => loadConfig({ SLUICE_PREFIX: "a b" })).toThrow('SLUICE_PREFIX="a b": expected subject tokens such as sluice or acme.sluice');
    expect(() => loadConfig({ SLUICE_STATE_BUCKET: "no.dots" })).toThrow(/^SLUICE_STATE_BUCKET="no.dots": expected a bucket name/);
    expect(() => loadConfig({ SLUICE_EVENT_THREAD: "yes" })).toThrow(/^SLUICE_EVENT_THREAD="yes": /);
  });

  it("exits beside a running sluice unless SLUICE_STANDBY=on, which waits for it", () => {
    expect(loadConfig({}).standby).toBe(false);
    expect(loadConfig({ SLUICE_STANDBY: "on" }).standby).toBe(true);
    expect(() => loadConfig({ SLUICE_STANDBY: "1" })).toThrow(/^SLUICE_STANDBY="1": /);
  });

  it("publishes busy turns' decision events from a thread of their own unless SLUICE_EVENT_THREAD=off", () => {
    expect(loadConfig({}).eventThread).toBe(true);
    expect(loadConfig({ SLUICE_EVENT_THREAD: "on" }).eventThread).toBe(true);
    expect(loadConfig({ SLUICE_EVENT_THREAD: "off" }).eventThread).toBe(false);
  });
});

describe("caps on scopes", () => {
  const MB = 2 ** 20;

  it("follow the heap where they are not set: the measured defaults at npm start's 1280 MB", () => {
    expect(loadConfig({}, 1280 * MB)).toMatchObject({ maxScopes: 2_000_000, maxLiveScopes: 120_000 });
    // SLUICE_MAX_HEAP_MB=4096: 3.2 times as many, without raising two more settings with it.
    expect(loadConfig({}, 4096 * MB)).toMatchObject({ maxScopes: 6_400_000, maxLiveScopes: 384_000 });
    expect(loadConfig({}, 320 * MB)).toMatchObject({ maxScopes: 500_000, maxLiveScopes: 30_000 });
  });

  it("keep a floor on a tiny heap, and take what is set over what the heap suggests", () => {
    expect(loadConfig({}, 1 * MB)).toMatchObject({ maxScopes: 10_000, maxLiveScopes: 1_000 });
    expect(loadConfig({ SLUICE_MAX_SCOPES: "5000", SLUICE_MAX_LIVE_SCOPES: "700" }, 4096 * MB)).toMatchObject({ maxScopes: 5000, maxLiveScopes: 700 });
    expect(() => loadConfig({ SLUICE_MAX_LIVE_SCOPES: "0" })).toThrow(/^SLUICE_MAX_LIVE_SCOPES="0": /);
  });
});
