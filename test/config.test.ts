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

  it("publishes busy turns' decision events from a thread of their own unless SLUICE_EVENT_THREAD=off", () => {
    expect(loadConfig({}).eventThread).toBe(true);
    expect(loadConfig({ SLUICE_EVENT_THREAD: "on" }).eventThread).toBe(true);
    expect(loadConfig({ SLUICE_EVENT_THREAD: "off" }).eventThread).toBe(false);
  });
});
