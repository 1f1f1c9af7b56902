/**
 * Where the time goes: self time per function from a V8 `.cpuprofile`
 * (`node --cpu-prof`), and the same grouped by package / source file.
 */
import { readFile } from "node:fs/promises";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  where: string;
  group: string;
  ms: number;
  /** Share of all sampled time except `(idle)`. */
  share: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  idleMs: number;
  busyMs: number;
  functions: SelfTime[];
  groups: { group: string; ms: number; share: number }[];
}

/** `node_modules/<pkg>` → pkg; our dist → `sluice <path>`; node internals → `node:<module>`. */
export function groupOf(url: string, name: string): string {
  if (url === "") return name.startsWith("(") ? name : "(native)";
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith("node:")) return url.replace(/^node:(internal\/)?/, "node:").replace(/\/.*$/, "");
  const ours = /\/dist\/(.*)$/.exec(url);
  if (ours) return `sluice ${ours[1]}`;
  return url;
}

function shortWhere(f: CallFrame): string {
  if (f.url === "") return "";
  const url = f.url.replace(/^file:\/\//, "").replace(/^.*\/node_modules\//, "").replace(/^.*\/dist\//, "dist/");
  return `${url}:${f.lineNumber + 1}`;
}

export async function summarizeCpuProfile(file: string, top = 25): Promise<ProfileSummary> {
  const prof = JSON.parse(await readFile(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of prof.nodes) byId.set(n.id, n);
  // timeDeltas[i] is the time before sample i; the interval after a sample is charged to it.
  const selfUs = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = prof.timeDeltas[i + 1] ?? 0;
    const id = prof.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  }
  const fns = new Map<string, { name: string; where: string; group: string; us: number }>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    totalUs += us;
    if (f.functionName === "(idle)") {
      idleUs += us;
      continue;
    }
    const name = f.functionName || "(anonymous)";
    const where = shortWhere(f);
    const k = `${name}\u0000${where}`;
    const e = fns.get(k) ?? { name, where, group: groupOf(f.url, name), us: 0 };
    e.us += us;
    fns.set(k, e);
  }
  const busyUs = totalUs - idleUs;
  const share = (us: number): number => (busyUs > 0 ? us / busyUs : 0);
  const list = [...fns.values()].sort((a, b) => b.us - a.us);
  const groups = new Map<string, number>();
  for (const f of list) groups.set(f.group, (groups.get(f.group) ?? 0) + f.us);
  return {
    file,
    totalMs: totalUs / 1000,
    idleMs: idleUs / 1000,
    busyMs: busyUs / 1000,
    functions: list.slice(0, top).map((f) => ({ name: f.name, where: f.where, group: f.group, ms: f.us / 1000, share: share(f.us) })),
    groups: [...groups.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([group, us]) => ({ group, ms: us / 1000, share: share(us) })),
  };
}
