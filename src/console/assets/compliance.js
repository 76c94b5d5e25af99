// The compliance pages: exports (ask for one, follow its state, download the
// archive) and the residency report (policy, its history, where the rows are
// and which regions served the tenant, signed; a compliance officer's policy
// form is `residency_edit.js`). Owners and compliance officers
// (the API's rule for tenant exports and the report; anyone may export their
// own data).

import { fill, h, problemBox, showProblem, table, when } from "./dom.js";
import * as session from "./session.js";
import { EDITORS, policyForm } from "./residency_edit.js";

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
    when(e.expires_at),
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
  const reload = async () => {
    showProblem(null);
    try {
      fill(list);
      await exportsPage(list, null);
    } catch (err) {
      showProblem(err);
    }
  };
  const ask = async (scope) => {
    showProblem(null);
    try {
      await session.call("POST", "/v1/exports", { scope });
    } catch (err) {
      showProblem(err);
      return;
    }
    await reload();
  };
  const buttons = [h("button", { type: "button", id: "export-mine", onclick: () => ask("user") }, "Export my data")];
  const everyone = role === "owner" || role === "compliance";
  if (everyone) {
    buttons.unshift(h("button", { type: "button", id: "export-tenant", onclick: () => ask("tenant") }, "Export the whole tenant"));
  }
  main.append(
    h("p", {}, "An export is built by a background job; its archive (a zip of NDJSON files and a manifest) " +
      "is downloaded with your session's token and checked against the SHA-256 the API gives."),
    h("p", { class: "inline" }, buttons, " ",
      h("button", { type: "button", id: "exports-refresh", onclick: reload }, "Refresh")),
    // The API's rule: owners and compliance officers list every export of the
    // tenant, anyone else only the ones they asked for.
    h("h2", {}, everyone ? "The tenant's exports, newest first" : "Your exports, newest first"),
    list);
  await exportsPage(list, null);
}

/** Appends one page of `GET /v1/exports` to `list`, and "Older exports" while
 * the API gives a next cursor. */
async function exportsPage(list, cursor) {
  const query = new URLSearchParams({ limit: "50" });
  if (cursor) {
    query.set("cursor", cursor);
  }
  const page = await session.call("GET", `/v1/exports?${query}`);
  if (!page.items.length && !cursor) {
    fill(list, h("p", { class: "meta" }, "None yet."));
    return;
  }
  list.append(table("Exports", ["id", "of", "state", "bytes", "asked", "expires", ""], page.items.map(exportRow)));
  if (page.next_cursor) {
    const more = h("button", { type: "button", id: "exports-older", onclick: async () => {
      more.remove();
      try {
        await exportsPage(list, page.next_cursor);
      } catch (err) {
        showProblem(err);
      }
    } }, "Older exports");
    list.append(h("p", {}, more));
  }
}

export async function residency(main, { tenantId, role }) {
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
    // `append` takes nodes, not an array: spread the editor's two (or none).
    ...(EDITORS.includes(role) ? [h("h2", {}, "Change the policy"),
      await policyForm(tenantId, r.policy, () => residency(main, { tenantId, role }))] : []),
    h("h2", {}, "Policy history"),
    table("Policy changes", ["when", "who", "action", "before", "after"], r.policy_history.map((c) => [
      new Date(c.at).toLocaleString(), h("span", { class: "mono" }, c.actor), c.action,
      c.before ? JSON.stringify(c.before) : "—", c.after ? JSON.stringify(c.after) : "—",
    ])),
    h("h2", {}, "Home region history"),
    table("Relocations", ["asked", "from", "to", "status", "finished"], r.home_history.map((c) => [
      new Date(c.requested_at).toLocaleString(), c.from_region, c.to_region, c.status,
      when(c.finished_at),
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
