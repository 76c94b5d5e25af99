// Quota management for one tenant (platform admins), opened from a row of the
// tenants page: its plan and per-tenant limit overrides (`GET`/`PATCH
// /v1/tenants/{id}`) with what it uses now beside them (`GET
// /v1/tenants/{id}/usage`, the owner's usage report). An empty override puts
// the limit back to the plan's (`null` in the PATCH); only what changed is
// sent. Validation is the API's: its refusal is shown with the request id.

import { bytes, fill, h, problemBox } from "./dom.js";
import * as session from "./session.js";

const PLANS = ["free", "pro", "enterprise"];
// Each limit, and how to read the tenant's use of it from the usage report.
const LIMITS = [
  ["requests_per_second", "Requests per second (per node)", null],
  ["burst", "Burst", null],
  ["concurrent_requests", "Concurrent requests (per node)", (u) => `${u.in_flight_requests} in flight`],
  ["storage_bytes", "Storage (bytes)", (u) => bytes(u.storage_bytes)],
  ["users", "Users", (u) => `${u.users} users`],
  ["ai_tokens_per_month", "AI tokens per month", (u) => `${u.ai_tokens.used} used`],
  ["message_bytes", "Largest message (bytes)", null],
  ["jobs_concurrent", "Concurrent jobs", null],
];

/** Opens the quota panel of `tenant` after the table holding `button`. */
export async function quotaPanel(button, tenant) {
  document.getElementById("quota-panel")?.remove();
  const panel = h("section", { id: "quota-panel", "aria-live": "polite" }, h("p", {}, "Loading…"));
  button.closest("div.table").after(panel);
  try {
    await draw(panel, tenant.id);
  } catch (err) {
    fill(panel, problemBox(err));
  }
}

async function draw(panel, id) {
  const path = `/v1/tenants/${encodeURIComponent(id)}`;
  const [tenant, usage] = await Promise.all([session.call("GET", path), session.call("GET", `${path}/usage`)]);
  const overrides = tenant.limit_overrides || {};
  const problem = h("div", { id: "quota-problem", class: "problem", role: "alert", hidden: true });
  const rows = LIMITS.map(([key, label, used]) => h("tr", { "data-limit": key },
    h("th", { scope: "row" }, label),
    h("td", { class: "in-force" }, String(tenant.limits[key])),
    h("td", {}, h("input", { type: "number", min: 1, name: key, id: `quota-${key}`, "aria-label": `${label}: override (empty: the plan's)`, value: overrides[key] ?? "" })),
    h("td", { class: "used" }, used ? used(usage) : "—")));
  // novalidate: the API judges the values (and says why, with a request id).
  const form = h("form", { id: "quota-form", novalidate: true },
    h("label", {}, "Plan ", h("select", { name: "plan", id: "quota-plan" },
      PLANS.map((p) => h("option", { value: p, selected: p === tenant.plan }, p)))),
    h("div", { class: "table" }, h("table", {},
      h("caption", { class: "meta" }, `Limits of ${tenant.slug}: in force, override, used now`),
      h("thead", {}, h("tr", {}, ["limit", "in force", "override", "used now"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows))),
    problem,
    h("p", { class: "actions" },
      h("button", { type: "submit", id: "quota-save" }, "Save limits"), " ",
      h("button", { type: "button", onclick: () => panel.remove() }, "Close")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.hidden = true;
    const change = {};
    const data = new FormData(form);
    if (data.get("plan") !== tenant.plan) {
      change.plan = data.get("plan");
    }
    const limits = {};
    for (const [key] of LIMITS) {
      const text = String(data.get(key)).trim();
      const now = overrides[key] ?? null;
      const wanted = text === "" ? null : Number(text);
      if (wanted !== now) {
        limits[key] = wanted;
      }
    }
    if (Object.keys(limits).length) {
      change.limits = limits;
    }
    try {
      if (Object.keys(change).length) {
        await session.call("PATCH", path, change);
      }
      await draw(panel, id);
      panel.prepend(h("p", { id: "quota-saved", class: "notice", role: "status" }, `Saved the limits of ${tenant.slug}.`));
    } catch (err) {
      fill(problem, problemBox(err));
      problem.hidden = false;
    }
  });
  fill(panel, h("h2", {}, `Quotas of ${tenant.slug}`), form);
}
