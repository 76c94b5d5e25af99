// The compliance pages: exports (ask for one, follow its state, download the
// archive) and the residency report (policy, its history, where the rows are
// and which regions served the tenant, signed). Owners and compliance officers
// (the API's rule for tenant exports and the report; anyone may export their
// own data).

import { fill, h, problemBox, showProblem, table } from "./dom.js";
import * as session from "./session.js";

// The API has no list of exports yet: the page shows the exports asked for
// from this tab (ids in sessionStorage) and any id looked up.
const KNOWN = "meridian.console.exports";

function known() {
  try {
    return JSON.parse(sessionStorage.getItem(KNOWN) || "[]");
  } catch {
    return [];
  }
}

function remember(id) {
  const ids = known().filter((x) => x !== id);
  ids.unshift(id);
  sessionStorage.setItem(KNOWN, JSON.stringify(ids.slice(0, 20)));
}

async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Fetches the archive with the token, checks its SHA-256 against the API's
 * and hands it to the browser as a file (a same-origin `blob:` URL). */
async function download(e, status) {
  fill(status, "Downloading…");
  const blob = await session.callBlob(`/v1/exports/${encodeURIComponent(e.id)}/download`);
  const sum = await sha256Hex(blob);
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: `export-${e.id}.zip` }, "save");
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  status.dataset.sha256 = sum;
  status.dataset.size = String(blob.size);
  fill(status, sum === e.sha256
    ? `Downloaded ${blob.size} bytes; SHA-256 matches the export's (${sum}).`
    : `Downloaded ${blob.size} bytes, but the SHA-256 ${sum} does NOT match the export's ${e.sha256}.`);
}

function exportRow(e) {
  const status = h("span", { class: "download-status", "aria-live": "polite" });
  let action = "—";
  if (e.state === "ready") {
    action = h("td", {},
      h("button", { type: "button", class: "download", "aria-label": `Download export ${e.id}`, onclick: async () => {
        try {
          await download(e, status);
        } catch (err) {
          fill(status, problemBox(err));
        }
      } }, "Download"),
      " ", status);
  }
  return [
    h("code", {}, e.id),
    e.scope === "user" ? `user ${e.user_id}` : "tenant",
    h("span", { class: "export-state" }, e.state),
    e.size == null ? "—" : h("td", { class: "num" }, String(e.size)),
    new Date(e.created_at).toLocaleString(),
    e.expires_at ? new Date(e.expires_at).toLocaleString() : "—",
    action,
  ];
}

export async function exports(main, { tenantId, role }) {
  // Another tenant's id is the API's 404, shown as "Not found" like every page.
  await session.call("GET", `/v1/tenants/${encodeURIComponent(tenantId)}`);
  const h1 = h("h1", {}, "Exports");
  fill(main, h1);
  document.title = "Exports · Meridian console";
  const list = h("div", { id: "exports-list" });
  const ask = async (scope) => {
    showProblem(null);
    try {
      const e = await session.call("POST", "/v1/exports", { scope });
      remember(e.id);
      await render(list);
    } catch (err) {
      showProblem(err);
    }
  };
  const lookup = h("form", { class: "inline", id: "export-lookup" },
    h("label", {}, "Export id", h("input", { name: "id", required: true, pattern: "[0-9a-fA-F-]{36}" })),
    h("button", { type: "submit" }, "Look up"));
  lookup.addEventListener("submit", async (event) => {
    event.preventDefault();
    remember(new FormData(lookup).get("id").trim());
    await render(list);
  });
  const buttons = [h("button", { type: "button", id: "export-mine", onclick: () => ask("user") }, "Export my data")];
  if (role === "owner" || role === "compliance") {
    buttons.unshift(h("button", { type: "button", id: "export-tenant", onclick: () => ask("tenant") }, "Export the whole tenant"));
  }
  main.append(
    h("p", {}, "An export is built by a background job; its archive (a zip of NDJSON files and a manifest) " +
      "is downloaded with your session's token and checked against the SHA-256 the API gives."),
    h("p", { class: "inline" }, buttons, " ",
      h("button", { type: "button", id: "exports-refresh", onclick: () => render(list) }, "Refresh")),
    lookup,
    h("h2", {}, "Exports asked for from this tab"),
    list);
  await render(list);
}

async function render(list) {
  const rows = [];
  for (const id of known()) {
    try {
      rows.push(exportRow(await session.call("GET", `/v1/exports/${encodeURIComponent(id)}`)));
    } catch (err) {
      rows.push([h("code", {}, id), h("td", { colspan: 6 }, problemBox(err))]);
    }
  }
  fill(list, rows.length
    ? table("Exports", ["id", "of", "state", "bytes", "asked", "expires", ""], rows)
    : h("p", { class: "meta" }, "None yet."));
}

export async function residency(main, { tenantId }) {
  const signed = await session.call("GET", `/v1/tenants/${encodeURIComponent(tenantId)}/residency-report`);
  const r = signed.report;
  const h1 = h("h1", {}, "Residency");
  fill(main, h1);
  document.title = "Residency · Meridian console";
  const yes = (b) => (b ? "yes" : "NO");
  main.append(
    h("p", { id: "residency-verdict", class: `verdict ${r.compliant ? "intact" : "broken"}` },
      h("strong", {}, r.compliant ? "Compliant. " : "Not compliant. "),
      r.compliant ? "Every row and every serving region is allowed by the policy." : r.findings.join(" ")),
    table("Policy", ["field", "value"], [
      ["policy", r.policy ? JSON.stringify(r.policy) : "none (any region)"],
      ["allowed regions", r.allowed_regions.join(", ")],
      ["home region", r.home_region],
      ["report made", `${new Date(r.generated_at).toLocaleString()} in ${r.generated_in} for ${r.generated_by}`],
      ["signed with", h("code", {}, signed.signature.key_id)],
    ]),
    h("h2", {}, "Policy history"),
    table("Policy changes", ["when", "who", "action", "before", "after"], r.policy_history.map((c) => [
      new Date(c.at).toLocaleString(), h("span", { class: "mono" }, c.actor), c.action,
      c.before ? JSON.stringify(c.before) : "—", c.after ? JSON.stringify(c.after) : "—",
    ])),
    h("h2", {}, "Home region history"),
    table("Relocations", ["asked", "from", "to", "status", "finished"], r.home_history.map((c) => [
      new Date(c.requested_at).toLocaleString(), c.from_region, c.to_region, c.status,
      c.finished_at ? new Date(c.finished_at).toLocaleString() : "—",
    ])),
    h("h2", {}, "Rows by region"),
    table("Rows per table and region", ["table", "region", "rows", "allowed"], r.rows.map((t) => [
      t.table, t.home_region, h("td", { class: "num" }, String(t.rows)), yes(t.allowed),
    ])),
    h("h2", {}, `Regions that served the tenant since ${r.served_since}`),
    table("Serving regions", ["region", "requests", "first", "last", "allowed"], r.served.map((s) => [
      s.region, h("td", { class: "num" }, String(s.requests)), new Date(s.first_seen).toLocaleString(),
      new Date(s.last_seen).toLocaleString(), yes(s.allowed),
    ])));
}
