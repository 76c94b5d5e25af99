// Charts without a library and without markup strings: SVG elements made with
// `createElementNS`, text as text nodes (so the strict CSP holds: no inline
// style, no HTML parsed from strings). Every chart comes with the same figures
// as a table, so a screen reader (or anyone) can read the values; the SVG is a labelled
// image (`role="img"`) whose name says what it shows.

import { h, table } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 640;
const H = 200;
const PAD = { left: 64, right: 12, top: 12, bottom: 28 };

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    el.setAttribute(name, String(value));
  }
  for (const child of children) {
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A short label for a bucket's start: the hour, or the date for days. */
export function bucketLabel(iso, bucket) {
  const d = new Date(iso);
  return bucket === "day"
    ? d.toISOString().slice(0, 10)
    : `${d.toISOString().slice(5, 10)} ${d.toISOString().slice(11, 16)}`;
}

/**
 * One series as a chart and a table. `points` are `{label, value}` oldest
 * first; `kind` is "bar" (counts per bucket) or "line" (a gauge);
 * `format` turns a value into text.
 */
export function chart({ id, title, points, kind = "bar", format = String }) {
  const max = Math.max(1, ...points.map((p) => p.value));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (points.length <= 1 ? plotW / 2 : (i * plotW) / (points.length - 1));
  const y = (v) => PAD.top + plotH - (v / max) * plotH;
  const titleId = `${id}-title`;
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`, class: `chart ${kind}`, role: "img", "aria-labelledby": titleId, id,
  });
  const last = points.length ? format(points[points.length - 1].value) : "no samples";
  svg.append(s("title", { id: titleId }, `${title}: ${points.length} buckets, highest ${format(max)}, latest ${last}`));
  // Axes and the two value marks (0 and the highest).
  svg.append(
    s("line", { x1: PAD.left, y1: PAD.top + plotH, x2: W - PAD.right, y2: PAD.top + plotH, class: "axis" }),
    s("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: PAD.top + plotH, class: "axis" }),
    s("text", { x: PAD.left - 6, y: PAD.top + 10, class: "tick", "text-anchor": "end" }, format(max)),
    s("text", { x: PAD.left - 6, y: PAD.top + plotH, class: "tick", "text-anchor": "end" }, format(0)));
  if (points.length) {
    svg.append(
      s("text", { x: PAD.left, y: H - 8, class: "tick" }, points[0].label),
      s("text", { x: W - PAD.right, y: H - 8, class: "tick", "text-anchor": "end" }, points[points.length - 1].label));
  }
  if (kind === "bar") {
    const slot = plotW / Math.max(points.length, 1);
    const bw = Math.max(1, slot * 0.7);
    points.forEach((p, i) => {
      const top = y(p.value);
      svg.append(s("rect", {
        x: PAD.left + i * slot + (slot - bw) / 2, y: top, width: bw, height: PAD.top + plotH - top, class: "bar",
      }));
    });
  } else if (points.length) {
    svg.append(s("polyline", { points: points.map((p, i) => `${x(i)},${y(p.value)}`).join(" "), class: "line" }));
    points.forEach((p, i) => svg.append(s("circle", { cx: x(i), cy: y(p.value), r: 2.5, class: "dot" })));
  }
  const rows = points.map((p) => [p.label, h("td", { class: "num" }, format(p.value))]);
  return h("figure", { class: "chart-box" },
    h("figcaption", {}, title),
    svg,
    h("details", {},
      h("summary", {}, `${title} as a table`),
      table(title, ["bucket (UTC)", "value"], rows)));
}
