import { existsSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

type Service = {
  image?: string;
  build?: unknown;
  command?: string | string[];
  environment?: Record<string, string | number | null> | string[];
  volumes?: Array<string | { type?: string; source?: string; target?: string; read_only?: boolean }>;
  ports?: Array<string | number | { target?: number; published?: string | number }>;
  depends_on?: string[] | Record<string, unknown>;
};
type Compose = { services: Record<string, Service>; volumes?: Record<string, unknown> };

const compose = parse(readFileSync(join(root, "docker-compose.yml"), "utf8")) as Compose;
const services = compose.services ?? {};

/** A service's environment as a map, whichever of the two compose syntaxes it uses. */
function env(service: Service): Record<string, string> {
  const e = service.environment ?? {};
  if (Array.isArray(e)) {
    return Object.fromEntries(
      e.map((kv) => {
        const i = kv.indexOf("=");
        return i < 0 ? [kv, ""] : [kv.slice(0, i), kv.slice(i + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, v == null ? "" : String(v)]));
}

/** Bind mounts of a service as { source, target, readOnly }, whichever syntax they use. */
function mounts(service: Service): Array<{ source: string; target: string; readOnly: boolean }> {
  return (service.volumes ?? []).map((v) => {
    if (typeof v === "string") {
      const [source = "", target = "", mode = ""] = v.split(":");
      return { source, target, readOnly: mode.split(",").includes("ro") };
    }
    return { source: v.source ?? "", target: v.target ?? "", readOnly: v.read_only === true };
  });
}

/** Container ports a service publishes. */
function containerPorts(service: Service): number[] {
  return (service.ports ?? []).map((p) => {
    if (typeof p === "number") return p;
    if (typeof p === "object") return Number(p.target);
    const spec = p.split("/")[0] ?? "";
    return Number(spec.split(":").at(-1));
  });
}

function dependsOn(service: Service): string[] {
  const d = service.depends_on ?? [];
  return Array.isArray(d) ? d : Object.keys(d);
}

/** The repo file a bind-mount source such as `./examples/x` names. */
function repoPath(source: string): string {
  return normalize(join(root, source));
}

describe("docker-compose.yml", () => {
  it("defines nats, sluice and prometheus", () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(["nats", "sluice", "prometheus"]));
    expect(services.nats.image).toMatch(/^nats:2\.10/);
    expect(services.sluice.build).toBeDefined();
    expect(services.prometheus.image).toMatch(/^prom\/prometheus/);
    expect(existsSync(join(root, "Dockerfile"))).toBe(true);
  });

  it("runs nats with JetStream on a volume, on port 4222", () => {
    const command = services.nats.command;
    const args = Array.isArray(command) ? command : String(command).split(/\s+/);
    expect(args).toContain("-js");
    expect(args[args.indexOf("-sd") + 1]).toBe("/data");
    expect(mounts(services.nats).some((m) => m.target === "/data")).toBe(true);
    expect(containerPorts(services.nats)).toContain(4222);
  });

  it("points sluice's NATS_URL at the nats service", () => {
    const url = new URL(env(services.sluice).NATS_URL ?? "");
    expect(url.protocol).toBe("nats:");
    expect(url.hostname in services).toBe(true);
    expect(url.hostname).toBe("nats");
    expect(url.port).toBe("4222");
    expect(dependsOn(services.sluice)).toContain("nats");
  });

  it("mounts a policy file that exists in the repo where SLUICE_POLICY says", () => {
    const e = env(services.sluice);
    expect(e.LOG_LEVEL).toBeTruthy();
    const policyMount = mounts(services.sluice).find((m) => m.target === e.SLUICE_POLICY);
    expect(policyMount, `a volume mounted at ${e.SLUICE_POLICY}`).toBeDefined();
    expect(policyMount!.readOnly).toBe(true);
    expect(policyMount!.source).toBe("./examples/policy.json");
    expect(existsSync(repoPath(policyMount!.source)), `${policyMount!.source} exists`).toBe(true);
  });

  it("has prometheus scrape sluice's metrics port", () => {
    const e = env(services.sluice);
    const port = Number(e.SLUICE_HTTP_PORT);
    expect(port).toBeGreaterThan(0);
    expect(containerPorts(services.sluice)).toContain(port);

    const configMount = mounts(services.prometheus).find((m) => m.target === "/etc/prometheus/prometheus.yml");
    expect(configMount).toBeDefined();
    const configPath = repoPath(configMount!.source);
    expect(existsSync(configPath)).toBe(true);
    const config = parse(readFileSync(configPath, "utf8")) as {
      scrape_configs?: Array<{ metrics_path?: string; static_configs?: Array<{ targets?: string[] }> }>;
    };
    const jobs = (config.scrape_configs ?? []).filter((job) =>
      (job.static_configs ?? []).some((sc) => (sc.targets ?? []).includes(`sluice:${port}`)),
    );
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.metrics_path ?? "/metrics").toBe("/metrics");
    expect(containerPorts(services.prometheus)).toContain(9090);
  });
});

describe("Dockerfile", () => {
  const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8");

  it("builds on node:20-bookworm-slim and runs the compiled service as user node", () => {
    expect(dockerfile).toMatch(/^FROM node:20-bookworm-slim/m);
    expect(dockerfile).toMatch(/RUN npm ci/);
    expect(dockerfile).toMatch(/npm run build/);
    expect(dockerfile).toMatch(/^USER node$/m);
    // The compiled service, with the heap settings `npm start` uses.
    const start = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).scripts.start as string;
    const flags = "--max-old-space-size=${SLUICE_MAX_HEAP_MB:-1280} --max-semi-space-size=${SLUICE_SEMI_SPACE_MB:-64}";
    expect(start).toContain(`node ${flags} dist/src/main.js`);
    expect(dockerfile).toContain(`CMD ["sh", "-c", "exec node ${flags} dist/src/main.js"]`);
  });

  it("keeps node_modules, dist and .git out of the build context", () => {
    const ignored = readFileSync(join(root, ".dockerignore"), "utf8").split("\n").map((l) => l.trim());
    expect(ignored).toEqual(expect.arrayContaining(["node_modules", "dist", ".git", "bench/results"]));
  });
});
