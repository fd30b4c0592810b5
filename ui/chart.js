// A small SVG chart of license usage over time: one bar per hour (the most licenses in use at
// once) against the licensed quantity (a dashed line). Drawn with the DOM, no library; the
// numbers are also given as a table for screen readers.

import { s, h, table, plural } from "./dom.js";

const W = 720;
const H = 240;
const M = { top: 16, right: 16, bottom: 36, left: 44 };
const HOUR = 3600 * 1000;

/** Round, readable tick values from 0 to at least `max`. */
function ticks(max) {
  max = Math.max(1, max);
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((x) => x >= raw);
  const out = [];
  for (let v = 0; v <= max + step / 2; v += step) out.push(v);
  if (out[out.length - 1] < max) out.push(out[out.length - 1] + step);
  return out;
}

function label(t, spanHours) {
  const d = new Date(t);
  return spanHours > 72
    ? d.toLocaleDateString(undefined, { month: "short", day: "numeric" })
    : d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
}

/**
 * `rows`: [{hour: ISO, peak}] of one feature; `quantity`: licensed count, or null (uncounted).
 * Returns a figure holding the SVG, a legend and the data table.
 */
export function usageChart(feature, rows, quantity) {
  const points = rows.map((r) => ({ t: new Date(r.hour).getTime(), peak: r.peak })).sort((a, b) => a.t - b.t);
  const t0 = points[0].t;
  const t1 = points[points.length - 1].t + HOUR;
  const spanHours = (t1 - t0) / HOUR;
  const top = ticks(Math.max(quantity ?? 0, ...points.map((p) => p.peak)));
  const yMax = top[top.length - 1];
  const x = (t) => M.left + ((t - t0) / (t1 - t0)) * (W - M.left - M.right);
  const y = (v) => H - M.bottom - (v / yMax) * (H - M.top - M.bottom);
  const barW = Math.max(1, x(t0 + HOUR) - x(t0) - 1);
  const peakMax = Math.max(...points.map((p) => p.peak));
  const summary = `${feature}: at most ${peakMax} in use at once over ${plural(Math.round(spanHours), "hour")}` +
    (quantity == null ? " (uncounted license)." : ` against ${quantity} licensed.`);

  const xTickCount = Math.min(4, Math.max(2, Math.round(spanHours)));
  const xTicks = Array.from({ length: xTickCount }, (_, i) => t0 + ((t1 - t0) * i) / (xTickCount - 1));

  const svg = s("svg", {
    class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": summary,
    "data-feature": feature, preserveAspectRatio: "xMidYMid meet",
  },
  s("title", {}, summary),
  top.map((v) => [
    s("line", { class: "grid", x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }),
    s("text", { class: "tick", x: M.left - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)),
  ]),
  s("line", { class: "axis", x1: M.left, x2: W - M.right, y1: y(0), y2: y(0) }),
  s("line", { class: "axis", x1: M.left, x2: M.left, y1: M.top, y2: y(0) }),
  xTicks.map((t, i) => s("text", {
    class: "tick", x: x(t), y: H - M.bottom + 16,
    "text-anchor": i === 0 ? "start" : i === xTicks.length - 1 ? "end" : "middle",
  }, label(t, spanHours))),
  s("g", { class: "bars" }, points.map((p) => s("rect", {
    class: "bar", x: x(p.t), y: y(p.peak), width: barW, height: Math.max(0, y(0) - y(p.peak)),
    "data-peak": p.peak,
  }, s("title", {}, `${new Date(p.t).toLocaleString()}: ${p.peak} in use`)))),
  quantity == null ? null : [
    s("line", { class: "limit", x1: M.left, x2: W - M.right, y1: y(quantity), y2: y(quantity), "data-quantity": quantity }),
    s("text", { class: "limit-label", x: W - M.right, y: y(quantity) - 5, "text-anchor": "end" }, `licensed: ${quantity}`),
  ]);

  return h("figure", { class: "card", "aria-labelledby": `cap-${feature}` },
    h("h3", { id: `cap-${feature}` }, feature),
    h("div", { class: "legend", "aria-hidden": "true" },
      h("span", {}, h("span", { class: "swatch bar" }), "most in use at once, per hour"),
      quantity == null ? h("span", {}, "uncounted: no limit") : h("span", {}, h("span", { class: "swatch limit" }), "licensed quantity")),
    svg,
    h("figcaption", { class: "muted" }, summary),
    h("details", {}, h("summary", {}, "The numbers"),
      table(`Usage of ${feature} per hour`, [{ label: "Hour" }, { label: "Most in use", cls: "num" }],
        points.map((p) => [new Date(p.t).toLocaleString(), p.peak]))));
}
