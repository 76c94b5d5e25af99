// The platform view for platform admins and operators: its navigation, the
// "Platform sign-in" entry (the platform's OIDC provider), the tenants page
// (`#/platform/tenants`: search and filters, "View as" by impersonation) and
// the impersonation banner (actor, mode, time left from `GET /v1/me`, "End
// impersonation"). The region map is `regionmap.js`, the top tenants by load
// `top.js`, the "New tenant" form `provision.js`, a tenant's quotas (from
// its row) `quotas.js`, its relocation `relocation.js`. What a role may do is
// the API's: an operator's navigation has the regions and top tenants only (`GET /v1/tenants`
// and impersonation are the platform admin's), and a page reached by URL
// anyway shows the API's refusal.

import * as acting from "./acting.js";
import { fill, h, showProblem, table } from "./dom.js";
import { regions } from "./regionmap.js";
import * as session from "./session.js";
import { provision } from "./provision.js";
import { quotaPanel } from "./quotas.js";
import { relocationPanel } from "./relocation.js";
import { top } from "./top.js";

export const PAGES = {
  regions, top, tenants,
  new: (main, options) => provision(main, { ...options, viewAs: askReason }),
};

/** The platform pages a role has. */
export function pagesFor(role) {
  const pages = [["regions", "Regions"], ["top", "Top tenants"]];
  if (role === "platform_admin") {
    pages.push(["tenants", "Tenants"], ["new", "New tenant"]);
  }
  return pages;
}

/** The sign-in page's platform entry: to the API's platform OIDC start, which
 * sends the browser to the platform's provider and back to `/console/`. */
export function signInEntry() {
  const back = `${location.origin}/console/`;
  const go = () => location.assign(`/v1/auth/platform/oidc/start?redirect_uri=${encodeURIComponent(back)}`);
  return h("section", { class: "platform-signin" },
    h("h2", {}, "Platform staff"),
    h("button", { type: "button", id: "signin-platform", onclick: go }, "Platform sign-in"));
}

const PLANS = ["free", "pro", "enterprise"];
const STATUSES = ["active", "suspended", "erased"];

function select(name, label, values) {
  return h("label", {}, label,
    h("select", { name, id: `filter-${name}` }, h("option", { value: "" }, "any"), values.map((v) => h("option", { value: v }, v))));
}

async function tenants(main) {
  const topology = await session.call("GET", "/v1/regions");
  const h1 = h("h1", {}, "Tenants");
  document.title = "Tenants · Meridian console";
  const form = h("form", { class: "inline", id: "tenant-search", role: "search" },
    h("label", {}, "Slug or name contains", h("input", { name: "q", id: "filter-q", type: "search", maxlength: 100 })),
    select("region", "Home region", topology.regions.map((r) => r.id)),
    select("plan", "Plan", PLANS),
    select("status", "Status", STATUSES),
    h("button", { type: "submit", id: "tenant-search-submit" }, "Search"));
  const list = h("div", { id: "tenant-list", "aria-live": "polite" });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showProblem(null);
    fill(list);
    try {
      await page(list, filters(form), null);
    } catch (err) {
      showProblem(err);
    }
  });
  fill(main, h1, form, list);
  await page(list, filters(form), null);
}

function filters(form) {
  const query = new URLSearchParams({ limit: "50" });
  for (const [k, v] of new FormData(form)) {
    if (String(v).trim()) {
      query.set(k, String(v).trim());
    }
  }
  return query;
}

async function page(list, query, cursor) {
  if (cursor) {
    query.set("cursor", cursor);
  }
  const result = await session.call("GET", `/v1/tenants?${query}`);
  list.append(table(`${result.items.length} tenants${cursor ? " (more)" : ""}`,
    ["slug", "name", "plan", "home region", "status", "created", ""],
    result.items.map((t) => [
      h("strong", {}, t.slug), t.name, t.plan, t.home_region, t.status,
      new Date(t.created_at).toLocaleDateString(),
      h("td", {},
        h("button", { type: "button", class: "view-as", "data-tenant": t.id, onclick: (e) => askReason(e.target, t) }, `View as ${t.slug}…`), " ",
        h("button", { type: "button", class: "quotas", "data-tenant": t.id, onclick: (e) => quotaPanel(e.target, t) }, `Quotas of ${t.slug}`), " ",
        h("button", { type: "button", class: "relocate", "data-tenant": t.id, onclick: (e) => relocationPanel(e.target, t).catch(showProblem) }, `Relocate ${t.slug}…`)),
    ])));
  if (result.next_cursor) {
    const more = h("button", { type: "button", onclick: async () => {
      more.remove();
      try {
        await page(list, query, result.next_cursor);
      } catch (err) {
        showProblem(err);
      }
    } }, "More tenants");
    list.append(h("p", {}, more));
  }
}

/** "View as": the reason (required by the API) and how long, then the impersonation. */
function askReason(button, tenant) {
  document.getElementById("impersonate-form")?.remove();
  const form = h("form", { class: "stack", id: "impersonate-form" },
    h("h2", {}, `View ${tenant.slug} as its admin (impersonation)`),
    h("label", {}, "Reason (recorded in the tenant's audit trail)",
      h("input", { name: "reason", id: "impersonate-reason", required: true, maxlength: 500 })),
    h("label", {}, "Minutes (1–60)", h("input", { name: "minutes", id: "impersonate-minutes", type: "number", min: 1, max: 60, value: 15, required: true })),
    h("p", { class: "actions" },
      h("button", { type: "submit", id: "impersonate-start" }, "Start impersonation"), " ",
      h("button", { type: "button", onclick: () => form.remove() }, "Cancel")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showProblem(null);
    const data = new FormData(form);
    try {
      await impersonate(tenant, data.get("reason"), Number(data.get("minutes")));
    } catch (err) {
      showProblem(err);
    }
  });
  button.closest("div.table").after(form);
  form.querySelector("input").focus();
}

async function impersonate(tenant, reason, minutes) {
  const started = await session.call("POST", `/v1/tenants/${encodeURIComponent(tenant.id)}/impersonations`, { reason, minutes });
  acting.start({
    access: started.access_token, id: started.id, tenantId: started.tenant_id, slug: tenant.slug,
    actor: started.actor, mode: started.mode, expiresAt: started.expires_at, role: "admin",
  });
  // The end the tenant's API states for this token (`GET /v1/me`), not our clock's guess.
  const me = await session.call("GET", "/v1/me");
  const imp = acting.current();
  if (imp && me.impersonation) {
    imp.expiresAt = me.impersonation.expires_at;
    imp.actor = me.impersonation.actor;
    imp.mode = me.impersonation.mode;
  }
  location.hash = `#/tenants/${encodeURIComponent(started.tenant_id)}`;
}

let ticker = null;
const NOTICE = "meridian.console.notice";

function left(expiresAt) {
  const ms = Date.parse(expiresAt) - Date.now();
  const total = Math.max(0, Math.floor(ms / 1000));
  return { ms, text: `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}` };
}

/** The banner above every page while impersonating (hidden otherwise); it
 * counts down each second and ends the impersonation at its expiry. */
export function banner() {
  let box = document.getElementById("impersonation-banner");
  if (!box) {
    box = h("div", { id: "impersonation-banner", class: "impersonation", role: "status" });
    document.querySelector("header.bar").after(box);
  }
  clearInterval(ticker);
  const imp = acting.current();
  if (!imp) {
    box.hidden = true;
    fill(box);
    return;
  }
  const time = h("strong", { id: "impersonation-left" }, left(imp.expiresAt).text);
  const stop = h("button", { type: "button", id: "impersonation-end", onclick: async () => {
    stop.disabled = true;
    try {
      await session.platformCall("DELETE", `/v1/tenants/${encodeURIComponent(imp.tenantId)}/impersonations/${encodeURIComponent(imp.id)}`);
    } catch (err) {
      showProblem(err);
    }
    acting.end("ended by you");
  } }, "End impersonation");
  fill(box,
    h("span", {}, "Impersonating ", h("strong", { id: "impersonation-tenant" }, imp.slug),
      " as ", h("strong", {}, imp.actor), ` (${imp.mode === "write" ? "read and write" : "read only"}) · time left `, time),
    stop);
  box.hidden = false;
  ticker = setInterval(() => {
    const now = left(imp.expiresAt);
    time.textContent = now.text;
    if (now.ms <= 0) {
      clearInterval(ticker);
      acting.end("it expired");
    }
  }, 1000);
}

/** After an impersonation ended: the platform's tenants page, saying so. */
export function ended(imp, reason) {
  banner();
  sessionStorage.setItem(NOTICE, `The impersonation of ${imp.slug} ended: ${reason}. You are back in the platform view.`);
  if (location.hash === "#/platform/tenants") {
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = "#/platform/tenants";
  }
}

/** A notice left by `ended` for the next page, shown once. */
export function notice(main) {
  const text = sessionStorage.getItem(NOTICE);
  if (text) {
    sessionStorage.removeItem(NOTICE);
    main.prepend(h("p", { id: "impersonation-ended", class: "notice", role: "status" }, text));
  }
}
