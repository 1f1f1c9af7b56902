/**
 * The bench's chart, written by hand as SVG text: grouped bars of ops/s (median,
 * with a min–max whisker) per series at each level, on a log scale, one panel
 * for the series over the network and one for the in-process ones. Plus a tiny
 * well-formedness check, so that a broken chart fails the bench, not a viewer.
 */
import type { Measurement } from "./report.js";
import type { Series } from "./series.js";

const COLORS: Record<string, string> = {
  echo: "#9e9e9e",
  sluice: "#1f77b4",
  batch: "#2ca02c",
  client: "#9467bd",
  "rlf-redis": "#d62728",
  core: "#1f77b4",
  plain: "#7f7f7f",
  "rlf-memory": "#ff7f0e",
  "report-durable": "#8c564b",
  "report-memory": "#17becf",
  "publish-durable": "#e377c2",
  "publish-memory": "#bcbd22",
};

export const escapeXml = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const compact = (n: number): string => {
  if (!Number.isFinite(n)) return "-";
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(n >= 1e4 ? 0 : 1)}k`;
  return n.toFixed(0);
};

/** An axis tick at a power of ten: 1, 10, 100, 1k, 10k, 100k, 1M, … */
const tick = (n: number): string => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n));

const f1 = (n: number): string => (Math.round(n * 10) / 10).toString();

interface Panel {
  title: string;
  levelName: (level: number) => string;
  series: Series[];
  ms: Measurement[];
}

const PANEL_H = 300;
const WIDTH = 980;
const LEFT = 70;
const RIGHT = 20;
const TOP = 64;

function panelSvg(p: Panel, y0: number): string {
  const out: string[] = [];
  const plotW = WIDTH - LEFT - RIGHT;
  const plotTop = y0 + 44;
  const plotH = PANEL_H - 44 - 40;
  const plotBottom = plotTop + plotH;
  out.push(`<text x="${LEFT}" y="${y0 + 18}" class="h2">${escapeXml(p.title)}</text>`);

  const values = p.ms.flatMap((m) => [m.ops.min, m.ops.max, m.ops.median]).filter((v) => v > 0 && Number.isFinite(v));
  if (values.length === 0) {
    out.push(`<text x="${LEFT}" y="${plotTop + 20}" class="note">nothing measured</text>`);
    return out.join("\n");
  }
  const lo = Math.floor(Math.log10(Math.min(...values)));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...values))));
  const yOf = (v: number): number => plotBottom - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * plotH;

  // Grid and axis labels at each decade.
  for (let d = lo; d <= hi; d++) {
    const y = f1(yOf(10 ** d));
    out.push(`<line x1="${LEFT}" y1="${y}" x2="${LEFT + plotW}" y2="${y}" class="grid"/>`);
    out.push(`<text x="${LEFT - 6}" y="${f1(yOf(10 ** d) + 4)}" class="axis" text-anchor="end">${tick(10 ** d)}</text>`);
  }
  out.push(`<line x1="${LEFT}" y1="${plotBottom}" x2="${LEFT + plotW}" y2="${plotBottom}" class="base"/>`);
  out.push(`<text x="16" y="${f1(plotTop + plotH / 2)}" class="axis" transform="rotate(-90 16 ${f1(plotTop + plotH / 2)})" text-anchor="middle">ops/s (log)</text>`);

  const levels = [...new Set(p.ms.map((m) => m.level))].sort((a, b) => a - b);
  const groupW = plotW / levels.length;
  const maxBars = Math.max(...levels.map((l) => p.series.filter((s) => p.ms.some((m) => m.series === s.id && m.level === l)).length));
  const barW = Math.min(44, (groupW * 0.8) / Math.max(1, maxBars));
  levels.forEach((level, gi) => {
    const present = p.series.filter((s) => p.ms.some((m) => m.series === s.id && m.level === level));
    const cx = LEFT + groupW * (gi + 0.5);
    const x0 = cx - (present.length * barW) / 2;
    present.forEach((s, bi) => {
      const m = p.ms.find((mm) => mm.series === s.id && mm.level === level)!;
      const x = x0 + bi * barW;
      const y = yOf(m.ops.median);
      const color = COLORS[s.id] ?? "#444";
      out.push(
        `<rect x="${f1(x + 1)}" y="${f1(y)}" width="${f1(barW - 2)}" height="${f1(Math.max(0, plotBottom - y))}" fill="${color}">` +
          `<title>${escapeXml(`${s.label} @ ${p.levelName(level)}: ${compact(m.ops.median)} ${s.unit} (min ${compact(m.ops.min)}, max ${compact(m.ops.max)})`)}</title></rect>`,
      );
      if (m.ops.min !== m.ops.max) {
        const xm = f1(x + barW / 2);
        const ya = f1(yOf(m.ops.min));
        const yb = f1(yOf(m.ops.max));
        out.push(`<path d="M${xm} ${ya}V${yb}M${f1(x + barW / 2 - 4)} ${ya}h8M${f1(x + barW / 2 - 4)} ${yb}h8" class="whisker"/>`);
      }
      out.push(`<text x="${f1(x + barW / 2)}" y="${f1(Math.min(yOf(m.ops.max), y) - 4)}" class="val" text-anchor="middle">${compact(m.ops.median)}</text>`);
    });
    out.push(`<text x="${f1(cx)}" y="${plotBottom + 18}" class="axis" text-anchor="middle">${escapeXml(p.levelName(level))}</text>`);
  });

  // Legend, right-aligned on the heading line.
  let lx = WIDTH - RIGHT;
  const items = p.series.filter((s) => p.ms.some((m) => m.series === s.id)).reverse();
  for (const s of items) {
    const w = s.id.length * 7 + 22;
    lx -= w;
    out.push(`<rect x="${lx}" y="${y0 + 8}" width="12" height="12" fill="${COLORS[s.id] ?? "#444"}"/>`);
    out.push(`<text x="${lx + 16}" y="${y0 + 18}" class="legend">${escapeXml(s.id)}</text>`);
  }
  return out.join("\n");
}

/** The whole chart. */
export function chartSvg(opts: { title: string; subtitle: string; series: readonly Series[]; ms: readonly Measurement[]; notes?: readonly string[] }): string {
  const net = opts.series.filter((s) => s.program === "load");
  const inproc = opts.series.filter((s) => s.program === "inproc");
  const panels: Panel[] = [];
  const netMs = opts.ms.filter((m) => net.some((s) => s.id === m.series));
  const inMs = opts.ms.filter((m) => inproc.some((s) => s.id === m.series));
  if (netMs.length > 0) panels.push({ title: "Over NATS / Redis: ops/s by calls in flight", levelName: (l) => `${l} in flight`, series: net, ms: netMs });
  if (inMs.length > 0) panels.push({ title: "In process, no network: admissions/s by requests per turn", levelName: (l) => `${l} per turn`, series: inproc, ms: inMs });
  const dur = opts.series.filter((s) => s.program === "durability");
  const durMs = opts.ms.filter((m) => dur.some((s) => s.id === m.series));
  if (durMs.length > 0) {
    panels.push({ title: "Cost of durability: reports/s, acked (by calls in flight) and published", levelName: (l) => (l === 0 ? "published, no ack" : `acked, ${l} in flight`), series: dur, ms: durMs });
  }
  const notes = opts.notes ?? [];
  const notesH = notes.length > 0 ? 30 + notes.length * 16 : 0;
  const height = TOP + Math.max(1, panels.length) * PANEL_H + notesH + 10;
  const notesY = TOP + panels.length * PANEL_H;
  const body = [
    ...panels.map((p, i) => panelSvg(p, TOP + i * PANEL_H)),
    ...(notes.length > 0 ? [`<text x="${LEFT}" y="${notesY + 18}" class="h2">Memory with many keys</text>`] : []),
    ...notes.map((n, i) => `<text x="${LEFT}" y="${notesY + 38 + i * 16}" class="axis">${escapeXml(n)}</text>`),
  ].join("\n");
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<style>.h1{font-size:17px;font-weight:bold}.h2{font-size:14px;font-weight:bold}.sub{font-size:11px;fill:#555}.axis{font-size:11px;fill:#333}` +
      `.val{font-size:10px;fill:#222}.legend{font-size:11px;fill:#222}.note{font-size:12px;fill:#888}.grid{stroke:#e4e4e4;stroke-width:1}` +
      `.base{stroke:#888;stroke-width:1}.whisker{stroke:#000;stroke-width:1.2;fill:none}</style>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${LEFT}" y="26" class="h1">${escapeXml(opts.title)}</text>`,
    `<text x="${LEFT}" y="44" class="sub">${escapeXml(opts.subtitle)}</text>`,
    body,
    `</svg>`,
    "",
  ].join("\n");
}

/**
 * A small well-formedness check (not a validator): one root element, tags
 * balanced and properly nested, attributes quoted, no raw `<` or stray `&` in
 * text. Throws with the offset of the first problem.
 */
export function checkXml(text: string): void {
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`SVG is not well-formed at offset ${i}: ${what} (…${text.slice(Math.max(0, i - 40), i + 40)}…)`);
  };
  const checkText = (s: string): void => {
    const amp = /&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)/.exec(s);
    if (amp) fail("a bare &");
  };
  while (i < text.length) {
    const lt = text.indexOf("<", i);
    const chunk = lt < 0 ? text.slice(i) : text.slice(i, lt);
    if (stack.length === 0 && chunk.trim() !== "") fail("text outside the root element");
    checkText(chunk);
    if (lt < 0) break;
    i = lt;
    if (text.startsWith("<?", i)) {
      const end = text.indexOf("?>", i);
      if (end < 0) fail("unclosed <?");
      i = end + 2;
      continue;
    }
    if (text.startsWith("<!--", i)) {
      const end = text.indexOf("-->", i);
      if (end < 0) fail("unclosed comment");
      i = end + 3;
      continue;
    }
    const m = /^<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/.exec(text.slice(i, i + 4000));
    if (!m) fail("a malformed tag");
    const [whole, closing, name, attrs, selfClosing] = m!;
    const names = [...attrs!.matchAll(/([A-Za-z_][\w:.-]*)\s*=/g)].map((a) => a[1]!);
    if (new Set(names).size !== names.length) fail(`a repeated attribute in <${name}>`);
    for (const a of attrs!.matchAll(/=\s*"([^"]*)"/g)) checkText(a[1]!);
    if (closing) {
      if (selfClosing) fail("</x/>");
      const open = stack.pop();
      if (open !== name) fail(`</${name}> closes <${open ?? "nothing"}>`);
    } else {
      if (stack.length === 0 && ++roots > 1) fail("a second root element");
      if (!selfClosing) stack.push(name!);
    }
    i += whole!.length;
  }
  if (stack.length > 0) fail(`<${stack[stack.length - 1]}> is never closed`);
  if (roots !== 1) fail("no root element");
}
