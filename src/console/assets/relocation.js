// A tenant's relocation (platform admins), opened from its row on the tenants
// page: the target is chosen among the regions its residency allows (from
// `GET /v1/regions`, less its home), `POST /v1/tenants/{id}/relocation`
// starts it, and `GET …/relocation` is polled each second until it is done or
// failed, showing its status and the rows moved of those counted at the start.
// Whether a region is allowed is the API's decision too: a refusal
// (`residency_violation`, `relocation_in_progress`, …) is shown with its
// request id.

import { fill, h, problemBox } from "./dom.js";
import * as session from "./session.js";

const POLL_MS = 1000;
let poller = null;

function allowed(region, residency) {
  if (!residency) {
    return true;
  }
  if (residency.jurisdiction) {
    return region.jurisdiction === residency.jurisdiction;
  }
  return (residency.regions || []).includes(region.id);
}

function total(counts) {
  return Object.values(counts || {}).reduce((sum, n) => sum + Number(n || 0), 0);
}

/** Opens the relocation panel of `tenant` after the table holding `button`. */
export async function relocationPanel(button, tenant) {
  clearTimeout(poller);
  document.getElementById("relocation-panel")?.remove();
  const panel = h("section", { id: "relocation-panel", "aria-live": "polite" });
  button.closest("div.table").after(panel);
  const topology = await session.call("GET", "/v1/regions");
  const targets = topology.regions.filter((r) => r.id !== tenant.home_region && allowed(r, tenant.residency));
  const status = h("div", { id: "relocation-status", role: "status" });
  const form = h("form", { class: "inline", id: "relocation-form" },
    h("label", {}, "Move to", h("select", { name: "to_region", id: "relocation-target" },
      targets.map((r) => h("option", { value: r.id }, `${r.id} (${r.jurisdiction})`)))),
    h("button", { type: "submit", id: "relocation-start", disabled: targets.length === 0 }, "Start relocation"),
    h("button", { type: "button", onclick: () => { clearTimeout(poller); panel.remove(); } }, "Close"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const to = new FormData(form).get("to_region");
    try {
      const started = await session.call("POST", `/v1/tenants/${encodeURIComponent(tenant.id)}/relocation`, { to_region: to });
      show(status, started);
      poll(status, tenant);
    } catch (err) {
      fill(status, problemBox(err));
    }
  });
  fill(panel, h("h2", {}, `Relocate ${tenant.slug} (home ${tenant.home_region})`),
    targets.length ? form : h("p", {}, "Its residency allows no other region."), status);
}

function show(status, r) {
  const before = total(r.counts_before);
  const moved = total(r.moved);
  fill(status,
    h("p", {}, `${r.from_region} → ${r.to_region}: `, h("strong", { id: "relocation-state" }, r.status)),
    h("p", {}, `${moved} of ${before} rows moved`),
    r.error ? h("p", { class: "message" }, r.error) : null);
}

function poll(status, tenant) {
  clearTimeout(poller);
  poller = setTimeout(async () => {
    try {
      const r = await session.call("GET", `/v1/tenants/${encodeURIComponent(tenant.id)}/relocation`);
      show(status, r);
      if (r.status === "done") {
        status.append(h("p", { id: "relocation-done", class: "notice" }, `${tenant.slug} now lives in ${r.to_region}.`));
      } else if (r.status !== "failed") {
        poll(status, tenant);
      }
    } catch (err) {
      fill(status, problemBox(err));
    }
  }, POLL_MS);
}
