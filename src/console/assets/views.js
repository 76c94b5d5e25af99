// The pages. Each takes the `<main>` element and what the route names, asks the
// API, and renders; what a role may do is the API's decision, the console only
// leaves out controls the role cannot use (the API refuses them anyway).

import { ApiError } from "./api.js";
import { bytes, fill, h, problemBox, showProblem, table } from "./dom.js";
import * as session from "./session.js";
import { usageHistory } from "./usage_history.js";
import { auditFilterForm } from "./audit_filters.js";
import { arrivedWith, goToServingOrigin } from "./origin.js";
import { ERASERS, eraseButton, erasurePanel } from "./erasure.js";

const ADMINS = ["owner", "admin"];
const AUDITORS = ["owner", "admin", "compliance"];

/** Which tenant pages a role has (the nav shows only these). */
export function pagesFor(role) {
  const pages = [["", "Overview"], ["members", "Members"]];
  if (ADMINS.includes(role)) {
    pages.push(["usage", "Usage"]);
  }
  if (AUDITORS.includes(role)) {
    pages.push(["audit", "Audit trail"]);
  }
  pages.push(["exports", "Exports"]);
  if (role === "owner" || role === "compliance") {
    pages.push(["residency", "Residency"]);
  }
  if (ADMINS.includes(role)) {
    pages.push(["webhooks", "Webhooks"], ["calendar", "Calendar"]);
  }
  if (role === "owner" || role === "compliance") {
    pages.push(["impersonations", "Impersonations"]);
  }
  return pages;
}

function heading(main, text) {
  const h1 = h("h1", {}, text);
  fill(main, h1);
  document.title = `${text} · Meridian console`;
  return h1;
}

/** A failed load: the API's message and request id in place of the page. */
export function failed(main, err) {
  const title = err instanceof ApiError && err.status === 404 ? "Not found" : "Something went wrong";
  heading(main, title);
  main.append(h("div", { class: "problem", id: "view-problem" }, problemBox(err)));
}

export function signIn(main, { onDone, slug = "" }) {
  heading(main, "Sign in");
  const arrived = arrivedWith();
  if (arrived.slug) {
    main.append(h("p", { id: "signin-moved", role: "status" },
      `This node serves ${arrived.slug}: sign in here.`));
  }
  const form = h("form", { class: "stack", id: "signin" },
    h("label", {}, "Organisation (tenant slug)",
      h("input", { name: "slug", id: "slug", required: true, autocomplete: "organization", value: slug || arrived.slug })),
    h("label", {}, "Username", h("input", {
      name: "username", id: "username", required: true, autocomplete: "username", value: arrived.username })),
    h("label", {}, "Password",
      h("input", { name: "password", id: "password", type: "password", required: true, autocomplete: "current-password" })),
    h("button", { type: "submit", id: "signin-submit" }, "Sign in with the directory (LDAP)"),
    h("button", { type: "button", id: "signin-oidc" , onclick: () => startOidc(form) }, "Sign in with the identity provider (OIDC)"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const tenantSlug = data.get("slug").trim();
    showProblem(null);
    try {
      if (await goToServingOrigin(tenantSlug, data.get("username"))) {
        return;
      }
      await session.signInLdap(tenantSlug, data.get("username"), data.get("password"));
      onDone();
    } catch (err) {
      showProblem(err);
    }
  });
  main.append(form);
}

/** OIDC: the browser goes to the API's start route at the tenant's serving
 * origin, which sends it on to the provider; the provider sends it back to
 * `/console/` there with `code` and `state`. */
async function startOidc(form) {
  const slug = new FormData(form).get("slug").trim();
  if (!slug) {
    showProblem(new Error("Enter the organisation's slug first."));
    return;
  }
  showProblem(null);
  try {
    if (await goToServingOrigin(slug)) {
      return;
    }
  } catch (err) {
    showProblem(err);
    return;
  }
  const back = `${location.origin}/console/`;
  location.assign(`/v1/auth/${encodeURIComponent(slug)}/oidc/start?redirect_uri=${encodeURIComponent(back)}`);
}

/** The tenant the URL names, as the API shows it to this user (404 for another tenant's). */
function tenant(id) {
  return session.call("GET", `/v1/tenants/${encodeURIComponent(id)}`);
}

export async function overview(main, { tenantId }) {
  const t = await tenant(tenantId);
  const me = await session.call("GET", "/v1/me");
  heading(main, t.name || t.slug);
  main.append(
    table("The tenant", ["field", "value"], [
      ["slug", t.slug],
      ["id", h("code", {}, t.id)],
      ["plan", t.plan ?? "—"],
      ["home region", t.home_region],
      ["residency", t.residency ? JSON.stringify(t.residency) : "none"],
      ["status", t.status ?? "—"],
    ]),
    h("h2", {}, "You"),
    table("The signed-in user", ["field", "value"], [
      ["name", me.user ? me.user.display_name : "—"],
      ["email", me.user ? me.user.email : "—"],
      ["role", h("span", { id: "my-role" }, me.role)],
    ]));
}

export async function members(main, { tenantId, role }) {
  await tenant(tenantId);
  const page = await session.call("GET", "/v1/users?limit=200");
  heading(main, "Members and roles");
  const admin = ADMINS.includes(role);
  // Owners and compliance officers may erase a user (the API's rule).
  const eraser = ERASERS.includes(role);
  const panel = erasurePanel();
  const grantable = role === "owner" ? ["viewer", "member", "admin", "compliance", "owner"] : ["viewer", "member", "admin"];
  const rows = page.items.map((u) => {
    const cells = [u.display_name, u.email, h("span", { class: "role" }, u.role), u.status];
    const actions = [];
    if (admin && grantable.includes(u.role)) {
      const select = h("select", { "aria-label": `Role of ${u.email}` },
        grantable.map((r) => h("option", { value: r, selected: r === u.role }, r)));
      const save = h("button", { type: "button", class: "admin-action", onclick: async () => {
        showProblem(null);
        try {
          await session.call("PATCH", `/v1/users/${u.id}`, { role: select.value });
          await members(main, { tenantId, role });
        } catch (err) {
          showProblem(err);
        }
      } }, "Change role");
      actions.push(select, " ", save);
    }
    if (eraser) {
      actions.push(actions.length ? " " : null, eraseButton(u, tenantId, panel));
    }
    if (admin || eraser) {
      // An admin cannot change an owner or compliance officer (the API's rule).
      cells.push(actions.length ? h("td", {}, actions) : "—");
    }
    return cells;
  });
  const headers = ["name", "email", "role", "status"];
  if (admin || eraser) {
    headers.push("actions");
  }
  main.append(table(`${page.items.length} members${page.next_cursor ? " (first 200)" : ""}`, headers, rows), panel);
  if (admin) {
    main.append(h("h2", {}, "Add a member"), addMember(main, { tenantId, role }, grantable));
  }
}

function addMember(main, ctx, grantable) {
  const form = h("form", { class: "inline", id: "add-member" },
    h("label", {}, "Email", h("input", { name: "email", type: "email", required: true })),
    h("label", {}, "Display name", h("input", { name: "display_name", required: true })),
    h("label", {}, "Role", h("select", { name: "role" }, grantable.map((r) => h("option", { value: r }, r)))),
    h("button", { type: "submit", class: "admin-action" }, "Add member"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    showProblem(null);
    try {
      await session.call("POST", "/v1/users", data);
      await members(main, ctx);
    } catch (err) {
      showProblem(err);
    }
  });
  return form;
}

function against(label, used, limit, show = String) {
  const meter = h("meter", { min: 0, max: limit, value: Math.min(used, limit), "aria-label": `${label}: ${show(used)} of ${show(limit)}` });
  return [label, h("td", { class: "num" }, show(used)), h("td", { class: "num" }, show(limit)), h("td", {}, meter)];
}

export async function usage(main, { tenantId }) {
  await tenant(tenantId);
  const u = await session.call("GET", "/v1/usage");
  heading(main, "Usage against limits");
  const l = u.limits;
  main.append(
    table("Now (storage, users and AI tokens are exact; the rest is the answering node's)", ["what", "used", "limit", ""], [
      against("storage", u.storage_bytes, l.storage_bytes, bytes),
      against("users", u.users, l.users),
      against("AI tokens this month", u.ai_tokens.used + u.ai_tokens.reserved, l.ai_tokens_per_month),
      against("requests in flight (this node)", u.in_flight_requests, l.concurrent_requests),
    ]),
    h("h2", {}, "Request limits"),
    table("Per node", ["limit", "value"], [
      ["requests per second", l.requests_per_second],
      ["burst", l.burst],
      ["largest message", bytes(l.message_bytes)],
      ["background jobs at once", l.jobs_concurrent],
    ]),
    h("h2", {}, "Refused by a limit (this node, since it started)"),
    table("Denials", ["limit", "refused"], Object.entries(u.denials || {}).map(([k, v]) => [k, v])));
  await usageHistory(main);
}

export async function audit(main, { tenantId }) {
  await tenant(tenantId);
  heading(main, "Audit trail");
  const verdict = h("div", { id: "verdict", "aria-live": "polite" });
  const verify = h("button", { type: "button", id: "verify-chain", onclick: async () => {
    verify.disabled = true;
    fill(verdict, "Verifying…");
    try {
      const v = await session.call("GET", "/v1/audit/verify");
      const c = v.checkpoint;
      const checkpoint = c
        ? `; latest checkpoint (seq ${c.seq}): signature ${c.signature_valid ? "verifies" : "does NOT verify"}, ${c.matches_chain ? "matches" : "does NOT match"} the chain`
        : "; no signed checkpoint yet";
      verdict.className = `verdict ${v.intact ? "intact" : "broken"}`;
      fill(verdict, h("strong", {}, v.intact ? "Chain intact. " : "Chain broken. "), v.summary, checkpoint);
    } catch (err) {
      verdict.className = "verdict broken";
      fill(verdict, problemBox(err));
    } finally {
      verify.disabled = false;
    }
  } }, "Verify chain");
  const list = h("div", { id: "audit-events" });
  const filters = auditFilterForm(async (params) => {
    showProblem(null);
    fill(list);
    try {
      await auditPage(list, null, params);
    } catch (err) {
      showProblem(err);
    }
  });
  main.append(h("p", {}, verify), verdict, h("h2", {}, "Events, newest first"), filters, list);
  await auditPage(list, null, {});
}

// An event's sealed personal details as the API opened them, or "erased" once
// the data subject's key (or the tenant's keys) is gone.
function personalDetails(e) {
  if (e.personal_erased) {
    return h("em", { class: "erased" }, "erased");
  }
  if (!e.personal) {
    return "—";
  }
  return Object.entries(e.personal).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ");
}

async function auditPage(list, cursor, filters = {}) {
  const query = new URLSearchParams({ limit: "50", ...filters });
  if (cursor) {
    query.set("cursor", cursor);
  }
  const page = await session.call("GET", `/v1/audit?${query}`);
  list.append(table("Events", ["when", "action", "actor", "target", "personal details", "seq"], page.items.map((e) => [
    new Date(e.created_at).toLocaleString(),
    h("code", {}, e.action),
    h("span", { class: "mono" }, e.actor),
    e.target_kind ? `${e.target_kind} ${e.target_id ?? ""}` : "—",
    personalDetails(e),
    h("td", { class: "num" }, e.seq ?? "—"),
  ])));
  if (page.next_cursor) {
    const more = h("button", { type: "button", onclick: async () => {
      more.remove();
      try {
        await auditPage(list, page.next_cursor, filters);
      } catch (err) {
        showProblem(err);
      }
    } }, "Older events");
    list.append(h("p", {}, more));
  }
}
