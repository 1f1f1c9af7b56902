import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SluiceClient } from "../../src/client/mod.js";
import { type Harness, harness, until } from "../client/helpers.js";

// These run the built CLI (`npm test` compiles first, see the pretest script).
const BIN = join(import.meta.dirname, "../../bin/sluice.js");

const POLICY = {
  leaseTtlMs: 60_000,
  scopes: {
    key: { default: { rpm: 2, concurrency: 5 } },
    team: { default: { rpm: 100 } },
  },
};

let h: Harness;
let prefix = "";
let client: SluiceClient;
const dir = mkdtempSync(join(tmpdir(), "sluice-cli-"));

beforeAll(async () => {
  h = await harness();
});
afterAll(async () => {
  await h?.close();
});

async function fresh(policy: unknown = POLICY) {
  const s = await h.start(policy);
  prefix = s.prefix;
  client = new SluiceClient(h.nc, { prefix });
  return s;
}

interface Run {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exit: Promise<number | null>;
}

/** Start `sluice <args>` against the test server (NATS_URL) with the current prefix (SLUICE_PREFIX). */
function start(args: string[], env: Record<string, string> = {}): Run {
  let out = "";
  let err = "";
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, NATS_URL: h.server.url, SLUICE_PREFIX: prefix, NO_COLOR: "", FORCE_COLOR: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, out: () => out, err: () => err, exit };
}

async function sluice(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = start(args);
  const code = await r.exit;
  return { code, out: r.out(), err: r.err() };
}

/** A usage error: exit 2, `sluice: <message>` and the command's usage line, nothing on stdout. */
function expectUsage(r: { code: number | null; out: string; err: string }, message: RegExp, command?: string) {
  expect(r.code).toBe(2);
  expect(r.out).toBe("");
  const lines = r.err.trimEnd().split("\n");
  expect(lines).toHaveLength(2);
  expect(lines[0]).toMatch(message);
  expect(lines[0]).toMatch(/^sluice: /);
  expect(lines[1]).toMatch(command ? new RegExp(`^usage: sluice ${command} `) : /^usage: sluice <command>/);
}

/** A failure: exit 1, exactly one line `sluice: <message>` on stderr. */
function expectFailure(r: { code: number | null; out: string; err: string }, message: RegExp) {
  expect(r.code).toBe(1);
  const lines = r.err.trimEnd().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^sluice: /);
  expect(lines[0]).toMatch(message);
}

const NOBODY = ["--prefix", "nobody-serves-this"];
const NO_RESPONDERS = /^sluice: unavailable: nobody-serves-this\.[a-z.]+: no responders/;

describe("cli - help and usage", () => {
  it("prints the overview on --help and a page per command; no command is a usage error", async () => {
    const help = await sluice("--help");
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^sluice: admission control/);
    for (const c of ["serve", "admit", "report", "inspect", "ls", "watch", "policy", "reset"]) expect(help.out).toContain(`  ${c} `);
    const admitHelp = await sluice("admit", "--help");
    expect(admitHelp.code).toBe(0);
    expect(admitHelp.out).toMatch(/^Usage: sluice admit <key> <model>/);
    expect(admitHelp.out).toContain("--server");
    expect((await sluice("help", "watch")).out).toMatch(/^Usage: sluice watch/);
    expectUsage(await sluice(), /^sluice: missing command$/);
    expectUsage(await sluice("frobnicate"), /^sluice: unknown command "frobnicate"$/);
    expectUsage(await sluice("ls", "--timeout", "soon"), /--timeout: expected a positive number/, "ls");
    // Past Node's timer range the CLI hung; past the client's bound it blamed --prefix.
    expectUsage(await sluice("ls", "--timeout", "99999999999"), /^sluice: --timeout: expected a positive number of ms, at most 3600000/, "ls");
    expectUsage(await sluice("ls", "--timeout", "3600001"), /^sluice: --timeout: /, "ls");
    expectUsage(await sluice("help", "bogus"), /^sluice: help: unknown command "bogus"$/);
    expectUsage(await sluice("-s", " , ", "ls"), /^sluice: --server: expected one or more NATS URLs/);
    expectUsage(await sluice("watch", "gpt-4o", "--model", "m2"), /^sluice: watch: gpt-4o and --model m2: give one$/, "watch");
  });

  it("cannot reach NATS: one line, exit 1", async () => {
    expectFailure(await sluice("-s", "127.0.0.1:1", "ls"), /^sluice: cannot connect to NATS at 127\.0\.0\.1:1: /);
  });
});

describe("cli - admit", () => {
  it("prints the decision and its limits; exit 0 when admitted, 3 when rejected", async () => {
    await fresh();
    const a = await sluice("admit", "k", "gpt-4o", "--tokens", "10", "--cost", "0.5", "--scope", "team=search");
    expect(a.code).toBe(0);
    const lines = a.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^admit ok lease=L-\S+ delay=0ms$/);
    expect(lines).toContain("  key:k rpm 1/2 left reset=0ms");
    expect(lines).toContain("  team:search rpm 99/100 left reset=0ms");
    const b = await sluice("admit", "k", "gpt-4o", "--json");
    expect(b.code).toBe(0);
    expect(JSON.parse(b.out)).toMatchObject({ decision: "admit", reason: "ok" });
    const c = await sluice("admit", "k", "gpt-4o");
    expect(c.code).toBe(3);
    expect(c.out.split("\n")[0]).toBe("reject rate_limited scope=key:k retryAfter=30000ms");
    expect(c.err).toBe("");
    expect((await client.inspect("team:search")).view?.buckets?.rpm?.remaining).toBe(99);
  });

  it("bad arguments are usage errors; a failed request is one line", async () => {
    await fresh();
    expectUsage(await sluice("admit", "k"), /^sluice: admit: missing <model>$/, "admit");
    expectUsage(await sluice("admit", "k", "m", "--tokens", "many"), /^sluice: admit: tokens: expected a non-negative integer/, "admit");
    expectUsage(await sluice("admit", "k", "m", "--scope", "nokind"), /--scope "nokind": expected kind=value/, "admit");
    expectUsage(await sluice("admit", "k", "m", "--colour"), /^sluice: admit: Unknown option '--colour'$/, "admit");
    expectFailure(await sluice("admit", "k", "m", ...NOBODY), NO_RESPONDERS);
  });
});

describe("cli - report", () => {
  it("reports an outcome and prints the acknowledgement", async () => {
    await fresh();
    const d = await client.admit({ key: "k", model: "m" });
    const lease = (d as { lease: string }).lease;
    const r = await sluice("report", lease, "ok", "--tokens", "42", "--cost", "0.1", "--ttft", "300");
    expect(r).toMatchObject({ code: 0, out: "reported applied\n", err: "" });
    const again = await sluice("report", lease, "ok", "--json");
    expect(JSON.parse(again.out)).toEqual({ ok: true, status: "duplicate" });
  });

  it("bad arguments are usage errors; a report sluice refuses is one line, exit 1", async () => {
    await fresh();
    expectUsage(await sluice("report", "L-1"), /missing <outcome>/, "report");
    expectUsage(await sluice("report", "L-1", "great"), /^sluice: report: outcome: expected one of ok, rate_limited/, "report");
    const d = await client.admit({ key: "k", model: "m" });
    // A report for another key's lease: refused by sluice.
    expectFailure(await sluice("report", (d as { lease: string }).lease, "ok", "--key", "other", "--model", "m"), /^sluice: bad_request: /);
    expectFailure(await sluice("report", "L-1", "ok", ...NOBODY), NO_RESPONDERS);
  });
});

describe("cli - inspect and ls", () => {
  it("shows a scope's figures and lists live scopes", async () => {
    await fresh();
    await client.admit({ key: "k1", model: "m" });
    await client.admit({ key: "k2", model: "m" });
    const i = await sluice("inspect", "key:k1");
    expect(i.code).toBe(0);
    expect(i.out).toMatch(/^key:k1 live state="closed"\n/);
    expect(i.out).toContain("  rpm 1/2 left (burst 2)\n");
    expect(i.out).toContain("  concurrency 1/5 held\n");
    const j = JSON.parse((await sluice("inspect", "key:k1", "--json")).out);
    expect(j).toMatchObject({ scope: "key:k1", live: true, view: { concurrency: { held: 1 } } });
    expect((await sluice("inspect", "key:nobody")).out).toMatch(/^key:nobody not live\n/);

    const ls = await sluice("ls");
    expect(ls).toMatchObject({ code: 0, out: "key:k1 closed\nkey:k2 closed\nmodel:m closed\n" });
    expect((await sluice("ls", "key:", "--limit", "1")).out).toBe("key:k1 closed\n");
    expect(JSON.parse((await sluice("ls", "model:", "--json")).out)).toEqual({ scopes: [{ scope: "model:m", state: "closed" }], truncated: false });
  });

  it("bad arguments are usage errors; failed requests one line", async () => {
    await fresh();
    expectUsage(await sluice("inspect"), /missing <kind:value>/, "inspect");
    expectUsage(await sluice("inspect", "nocolon"), /expected a scope such as key:acme/, "inspect");
    expectUsage(await sluice("ls", "a", "b"), /^sluice: ls: unexpected argument "b"$/, "ls");
    expectUsage(await sluice("ls", "--limit", "0"), /--limit: expected an integer from 1 to 10000/, "ls");
    expectFailure(await sluice("inspect", "key:k", ...NOBODY), NO_RESPONDERS);
    expectFailure(await sluice("ls", ...NOBODY), NO_RESPONDERS);
  });
});

describe("cli - policy and reset", () => {
  it("gets and sets the policy; a document sluice refuses is one line naming the field", async () => {
    await fresh();
    const got = await sluice("policy", "get", "--json");
    expect(JSON.parse(got.out)).toEqual(POLICY);
    const file = join(dir, "policy.json");
    writeFileSync(file, JSON.stringify({ scopes: { key: { default: { rpm: 7 } } } }));
    expect(await sluice("policy", "set", file)).toMatchObject({ code: 0, out: "policy replaced\n" });
    expect(await client.policy.get()).toEqual({ scopes: { key: { default: { rpm: 7 } } } });

    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ scopes: { key: { default: { rpm: "fast" } } } }));
    expectFailure(await sluice("policy", "set", bad), /^sluice: bad_request: policy: scopes\.key\.default\.rpm: expected a positive number$/);
    const notJson = join(dir, "not.json");
    writeFileSync(notJson, "{ rpm: 7");
    expectFailure(await sluice("policy", "set", notJson), /is not valid JSON/);
    expectFailure(await sluice("policy", "set", join(dir, "missing.json")), /^sluice: policy set: cannot read /);
    expectUsage(await sluice("policy"), /^sluice: policy: missing get or set$/, "policy");
    expectUsage(await sluice("policy", "set"), /missing <file>/, "policy");
    expectUsage(await sluice("policy", "delete"), /unknown subcommand "delete"/, "policy");
    expectFailure(await sluice("policy", "get", ...NOBODY), NO_RESPONDERS);
  });

  it("resets a scope's usage", async () => {
    await fresh();
    await client.admit({ key: "k", model: "m" });
    await client.admit({ key: "k", model: "m" });
    expect((await client.admit({ key: "k", model: "m" })).decision).toBe("reject");
    expect(await sluice("reset", "key:k", "--what", "usage")).toMatchObject({ code: 0, out: "reset key:k (usage)\n" });
    expect((await client.admit({ key: "k", model: "m" })).decision).toBe("admit");
    expectUsage(await sluice("reset", "key:k", "--what", "everything"), /--what: expected breaker, usage or all/, "reset");
    expectUsage(await sluice("reset", "nope"), /scope: expected "kind:value"/, "reset");
    expectFailure(await sluice("reset", "key:k", ...NOBODY), NO_RESPONDERS);
  });
});

describe("cli - watch", () => {
  it("prints one line per decision until it is killed", async () => {
    await fresh();
    const w = start(["watch"]);
    await until(() => w.err().includes("watching"), 10_000);
    expect(w.err()).toBe(`watching ${prefix}.decisions.*.*\n`);
    const d = await client.admit({ key: "alice", model: "gpt 4", tokens: 5 });
    await client.admit({ key: "alice", model: "gpt 4" });
    await client.admit({ key: "alice", model: "gpt 4" });
    await until(() => w.out().split("\n").length > 3, 10_000);
    w.child.kill("SIGTERM");
    expect(await w.exit).toBe(0);
    const lines = w.out().trimEnd().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\S+Z admit  ok\\s+key=alice model="gpt 4" tokens=5 lease=${(d as { lease: string }).lease}$`));
    expect(lines[2]).toMatch(/ reject rate_limited\s+key=alice model="gpt 4" scope=key:alice retryAfter=30000ms$/);
  });

  it("filters by decision and model, stops after --count, and colours when asked", async () => {
    await fresh();
    const w = start(["watch", "reject", "--model", "m.1", "--count", "1"], { FORCE_COLOR: "1" });
    await until(() => w.err().includes("watching"), 10_000);
    expect(w.err()).toBe(`watching ${prefix}.decisions.reject.m%2E1\n`);
    for (const model of ["m.1", "m.1", "m.2", "m.2", "m.2", "m.1"]) await client.admit({ key: model, model });
    expect(await w.exit).toBe(0);
    const lines = w.out().trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("\x1b[31mreject\x1b[0m rate_limited");
    expect(lines[0]).toContain("model=m.1");

    const j = start(["watch", "--json", "--count", "1"]);
    await until(() => j.err().includes("watching"), 10_000);
    await client.admit({ key: "json", model: "m" });
    expect(await j.exit).toBe(0);
    expect(JSON.parse(j.out())).toMatchObject({ decision: "admit", key: "json", model: "m" });
  });

  it("--inspect tails inspection events, and says they may not be available", async () => {
    await fresh();
    const w = start(["watch", "--inspect"]);
    await until(() => w.err().includes("watching"), 10_000);
    expect(w.err()).toMatch(/not available otherwise/);
    h.nc.publish(`${prefix}.inspect.events.model.gpt-4%2E1`, JSON.stringify({ type: "@xstate.snapshot" }));
    await until(() => w.out().includes("\n"), 10_000);
    w.child.kill("SIGINT");
    expect(await w.exit).toBe(0);
    expect(w.out()).toMatch(/^\S+Z model:gpt-4\.1 \{"type":"@xstate\.snapshot"\}\n$/);
  });

  it("bad arguments are usage errors; an unreachable server is one line", async () => {
    await fresh();
    expectUsage(await sluice("watch", "--decision", "maybe"), /--decision: expected admit or reject/, "watch");
    expectUsage(await sluice("watch", "--count", "-3"), /--count/, "watch");
    expectUsage(await sluice("watch", "a", "b"), /unexpected argument "b"/, "watch");
    expectFailure(await sluice("-s", "127.0.0.1:1", "watch"), /cannot connect to NATS/);
  });
});

describe("cli - serve", () => {
  it("runs the service in-process with --server/--prefix/--policy, and stops on SIGTERM", async () => {
    const policy = join(dir, "serve-policy.json");
    writeFileSync(policy, JSON.stringify({ scopes: { key: { default: { rpm: 1 } } } }));
    const s = start(["serve", "--server", h.server.url, "--prefix", "served", "--policy", policy], { NATS_URL: "", SLUICE_PREFIX: "", LOG_LEVEL: "info" });
    await until(() => s.out().includes("sluice is serving"), 15_000);
    const served = new SluiceClient(h.nc, { prefix: "served" });
    expect((await served.admit({ key: "k", model: "m" })).decision).toBe("admit");
    expect((await served.admit({ key: "k", model: "m" })).decision).toBe("reject");
    s.child.kill("SIGTERM");
    expect(await s.exit).toBe(0);
    expect(s.out()).toContain("sluice stopped");
  });

  it("refuses extra arguments, and a bad policy file as the service does (exit 2)", async () => {
    expectUsage(await sluice("serve", "now"), /unexpected argument "now"/, "serve");
    const bad = join(dir, "serve-bad.json");
    writeFileSync(bad, JSON.stringify({ scopes: { key: { default: { rpm: 0 } } } }));
    const r = await sluice("serve", "--server", h.server.url, "--policy", bad);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`sluice: SLUICE_POLICY=${bad}: policy: scopes.key.default.rpm: expected a positive number\n`);
  });

  it("cannot reach the NATS it is given: one line, exit 1, no stack trace", async () => {
    const r = await sluice("serve", "--server", "nats://127.0.0.1:1", "--prefix", "unreachable");
    expectFailure(r, /^sluice: cannot connect to NATS \(.+\); check NATS_URL/);
  });
});
