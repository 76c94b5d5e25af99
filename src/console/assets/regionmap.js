// The platform view's region map (`#/platform/regions`): every region of
// `GET /v1/regions` with its state and health, the tenant counts of
// `GET /v1/regions/tenants`, and arrows: thin dashed ones for each region's
// first failover choice, thick ones labelled with tenant counts where a
// drained or unreachable region's tenants are served now. The SVG is built
// with DOM calls (no markup strings, nothing inline for the CSP to refuse);
// the table under it says the same in text for keyboard and screen readers,
// and holds the controls. Drain: the API's dry run first (who fails over
// where, who would be stranded), then a confirmation, then the real call.
// While the page is shown it asks again every 10 s and redraws when the
// answer changed (a drain by someone else, a region going unreachable).

import { fill, h, problemBox, showProblem, table } from "./dom.js";
import * as session from "./session.js";

const SVG = "http://www.w3.org/2000/svg";
const ORDER = ["us", "eu", "apac"];
const BOX = { w: 190, h: 74 };

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) {
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return el;
}

/** Columns by jurisdiction (as `ORDER`, then any other), regions stacked in each. */
function layout(regions) {
  const juris = [...new Set(regions.map((r) => r.jurisdiction))]
    .sort((a, b) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99));
  const pos = {};
  let rows = 0;
  juris.forEach((j, col) => {
    regions.filter((r) => r.jurisdiction === j).forEach((r, row) => {
      pos[r.id] = { x: 30 + col * 300, y: 50 + row * 130 };
      rows = Math.max(rows, row + 1);
    });
  });
  return { pos, juris, width: 30 + juris.length * 300, height: 50 + rows * 130 };
}

function edge(from, to, shift = 12) {
  // From the side of one box to the side of the other (or top/bottom in a
  // column, `shift` off centre so that two arrows between a pair stay apart).
  const fx = from.x + BOX.w / 2;
  const fy = from.y + BOX.h / 2;
  const tx = to.x + BOX.w / 2;
  const ty = to.y + BOX.h / 2;
  if (Math.abs(fx - tx) < 1) {
    const down = ty > fy;
    return [fx + shift, down ? from.y + BOX.h : from.y, tx + shift, down ? to.y : to.y + BOX.h];
  }
  const right = tx > fx;
  return [right ? from.x + BOX.w : from.x, fy, right ? to.x : to.x + BOX.w, ty];
}

function drawMap(regions, counts) {
  const { pos, juris, width, height } = layout(regions);
  const byId = Object.fromEntries(counts.map((c) => [c.region, c]));
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "regionmap", role: "img", "aria-labelledby": "map-title map-desc", id: "region-map" },
    s("title", { id: "map-title" }, "Region map"),
    s("desc", { id: "map-desc" }, "Regions by jurisdiction with their state and tenant counts; dashed arrows: first failover choice; solid arrows: where a drained or unreachable region's tenants are served now. The table below says the same."),
    s("defs", {},
      s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" })),
      s("marker", { id: "arrow-live", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" },
        s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead live" }))));
  juris.forEach((j, col) => svg.append(s("text", { x: 30 + col * 300, y: 24, class: "juris" }, j.toUpperCase())));
  for (const r of regions) {
    const first = r.failover.find((id) => pos[id]);
    if (first) {
      const [x1, y1, x2, y2] = edge(pos[r.id], pos[first]);
      svg.append(s("line", { x1, y1, x2, y2, class: "prefers", "marker-end": "url(#arrow)" }));
    }
  }
  for (const r of regions) {
    for (const f of byId[r.id]?.failover || []) {
      if (!f.to || !pos[f.to]) {
        continue;
      }
      const [x1, y1, x2, y2] = edge(pos[r.id], pos[f.to], -40);
      svg.append(
        s("line", { x1, y1, x2, y2, class: "failing-over", "data-from": r.id, "data-to": f.to, "marker-end": "url(#arrow-live)" }),
        s("text", { x: (x1 + x2) / 2 + 10, y: (y1 + y2) / 2 + 4, class: "flow-label" }, `${f.tenants} tenant${f.tenants === 1 ? "" : "s"} fail over`));
    }
  }
  for (const r of regions) {
    const p = pos[r.id];
    const c = byId[r.id] || { homed: 0, served: 0, failover: [] };
    const stranded = c.failover.filter((f) => !f.to).reduce((n, f) => n + f.tenants, 0);
    svg.append(s("g", { class: `region ${r.state}`, "data-region": r.id },
      s("rect", { x: p.x, y: p.y, width: BOX.w, height: BOX.h, rx: 8 }),
      s("text", { x: p.x + 10, y: p.y + 22, class: "name" }, r.id),
      s("text", { x: p.x + 10, y: p.y + 42 }, `${r.state}${r.healthy ? "" : " · not healthy"}`),
      s("text", { x: p.x + 10, y: p.y + 62 }, `homed ${c.homed} · served ${c.served}${stranded ? ` · ${stranded} stranded` : ""}`)));
  }
  return svg;
}

function failoverText(c) {
  if (!c || c.failover.length === 0) {
    return "—";
  }
  return c.failover.map((f) => `${f.tenants} → ${f.to || "nowhere (503)"}`).join(", ");
}

const LIVE_MS = 10000;
let live = null;

function load() {
  return Promise.all([
    session.call("GET", "/v1/regions"),
    session.call("GET", "/v1/regions/tenants"),
  ]);
}

export async function regions(main) {
  clearInterval(live);
  let [topology, counts] = await load();
  draw(main, topology, counts);
  let shown = JSON.stringify([topology, counts]);
  live = setInterval(async () => {
    if (!main.isConnected) {
      clearInterval(live);
      return;
    }
    // Not behind a background tab, nor under an open drain preview.
    if (document.hidden || document.getElementById("drain-panel")?.hasChildNodes()) {
      return;
    }
    try {
      [topology, counts] = await load();
    } catch {
      return; // the next tick asks again; a page action shows its own errors
    }
    const now = JSON.stringify([topology, counts]);
    if (now !== shown && main.isConnected) {
      shown = now;
      const focused = document.activeElement?.dataset?.region
        ? `${document.activeElement.localName}.${document.activeElement.classList[0]}[data-region="${document.activeElement.dataset.region}"]`
        : null;
      draw(main, topology, counts);
      if (focused) {
        main.querySelector(focused)?.focus();
      }
    }
  }, LIVE_MS);
}

function draw(main, topology, counts) {
  const h1 = h("h1", {}, "Regions");
  document.title = "Regions · Meridian console";
  const byId = Object.fromEntries(counts.items.map((c) => [c.region, c]));
  const panel = h("section", { id: "drain-panel", "aria-live": "polite" });
  const rows = topology.regions.map((r) => {
    const c = byId[r.id];
    const action = r.drained
      ? h("button", { type: "button", class: "undrain", "data-region": r.id, onclick: () => undrain(main, r.id) }, `Undrain ${r.id}`)
      : h("button", { type: "button", class: "drain", "data-region": r.id, onclick: () => preview(main, panel, r.id) }, `Drain ${r.id}…`);
    return [
      h("strong", {}, r.id), r.jurisdiction, h("span", { class: `state ${r.state}` }, r.state), r.healthy ? "yes" : "no",
      h("td", { class: "num" }, c ? c.homed : "—"), h("td", { class: "num" }, c ? c.active : "—"), h("td", { class: "num" }, c ? c.served : "—"),
      r.failover.join(" → ") || "—", h("td", { class: "now-serving" }, failoverText(c)), h("td", {}, action),
    ];
  });
  fill(main, h1,
    h("p", { class: "meta", id: "map-as-of" },
      `As the node in ${topology.region} sees it at ${new Date().toLocaleTimeString()} (asked again every ${LIVE_MS / 1000} s).`),
    h("div", { class: "map-box" }, drawMap(topology.regions, counts.items)),
    panel,
    table("Regions (the map in text)", ["region", "jurisdiction", "state", "healthy", "homed", "active", "served", "failover order", "tenants now served", ""], rows));
}

async function preview(main, panel, region) {
  showProblem(null);
  fill(panel, h("p", {}, `Asking the API what draining ${region} would do…`));
  let report;
  try {
    report = await session.call("POST", `/v1/regions/${encodeURIComponent(region)}/drain`, { dry_run: true });
  } catch (err) {
    fill(panel, h("div", { class: "problem" }, problemBox(err)));
    return;
  }
  const moves = report.failover.map((t) => [t.slug, t.to]);
  const stranded = report.unavailable.map((t) => [t.slug, "none: its residency allows no healthy region (503)"]);
  const force = h("input", { type: "checkbox", id: "drain-force" });
  const confirm = h("button", { type: "button", id: "drain-confirm", onclick: async () => {
    confirm.disabled = true;
    try {
      await session.call("POST", `/v1/regions/${encodeURIComponent(region)}/drain`, { force: force.checked });
      await regions(main);
      document.getElementById("region-map")?.focus?.();
    } catch (err) {
      confirm.disabled = false;
      showProblem(err);
    }
  } }, `Drain ${region}`);
  const cancel = h("button", { type: "button", onclick: () => fill(panel) }, "Cancel");
  const heading = h("h2", { id: "drain-preview", tabindex: "-1" }, `Drain ${region}? Impact preview`);
  fill(panel, heading,
    h("p", {}, `${moves.length} tenant${moves.length === 1 ? "" : "s"} would fail over; ${stranded.length} would be stranded.`),
    moves.length ? table("Would fail over", ["tenant", "to"], moves) : null,
    stranded.length ? table("Would be stranded", ["tenant", "served by"], stranded) : null,
    stranded.length ? h("label", { class: "check" }, force, "Drain anyway and strand these tenants (force)") : null,
    h("p", { class: "actions" }, confirm, " ", cancel));
  heading.focus();
}

async function undrain(main, region) {
  showProblem(null);
  try {
    await session.call("POST", `/v1/regions/${encodeURIComponent(region)}/undrain`);
    await regions(main);
  } catch (err) {
    showProblem(err);
  }
}
