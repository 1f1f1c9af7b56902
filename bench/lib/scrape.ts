/**
 * Reading a sluice process from the outside: its Prometheus text on
 * `/metrics` (SLUICE_HTTP_PORT; prom-client's default metrics plus sluice's),
 * and the kernel's view of its memory (/proc/<pid>/status).
 */
import { readFile } from "node:fs/promises";

/** One sample line: name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse the Prometheus text exposition format (the subset prom-client writes). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([A-Za-z_:][\w:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? "").matchAll(/([A-Za-z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[4]) });
  }
  return out;
}

/** Sum of the samples named `name` whose labels include `match`. */
export function sumOf(samples: readonly Sample[], name: string, match: Record<string, string> = {}): number {
  let sum = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}

/** GET `<httpUrl>/metrics` and parse it. */
export async function scrape(httpUrl: string, timeoutMs = 30_000): Promise<Sample[]> {
  const res = await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`${httpUrl}/metrics: HTTP ${res.status}`);
  return parseMetrics(await res.text());
}

/** VmRSS and VmHWM (peak resident set) of a process, bytes; undefined when /proc has no such process. */
export async function procMemory(pid: number): Promise<{ rss: number; hwm: number } | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : Number.NaN;
  };
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}
