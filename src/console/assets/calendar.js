// The calendar page (`#/tenants/{id}/calendar`, owners and admins: the API's
// rule for `/v1/calendar-accounts`): the tenant's CalDAV accounts and their sync
// health as the API stores it — status (pending, ok, failing, unauthorized),
// last sync and last success, how long since that success, failures in a row,
// next scheduled sync, the last error and the last server check — with "Sync
// now" per account (`POST /v1/calendar-accounts/{id}/sync`: a job). The account's
// password or token is never in an answer, so never on the page. Under each
// account, its grants (`/v1/calendar-accounts/{id}/grants`: which user, or
// everyone, may link which collection) with "Revoke" and a form to grant one;
// the API answers the path in its canonical spelling.

import { fill, h, showProblem, table, when } from "./dom.js";
import * as session from "./session.js";

function lag(account) {
  if (!account.last_success_at) {
    return "never synced";
  }
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(account.last_success_at)) / 1000));
  if (seconds < 120) {
    return `${seconds} s`;
  }
  return seconds < 7200 ? `${Math.round(seconds / 60)} min` : `${Math.round(seconds / 3600)} h`;
}

async function everyPage(path, max) {
  const items = [];
  let cursor = null;
  do {
    const page = await session.call("GET", `${path}?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

// One account's grants, a "Revoke" per grant and the form that adds one;
// `reload` redraws the page after a change.
async function grantsSection(account, users, reload) {
  const path = `/v1/calendar-accounts/${encodeURIComponent(account.id)}/grants`;
  const grants = await everyPage(path, 1000);
  const names = new Map(users.map((u) => [u.id, `${u.display_name} <${u.email}>`]));
  const rows = grants.map((g) => {
    const revoke = h("button", { type: "button", class: "grant-revoke", "data-grant": g.id, "aria-label": `Revoke ${g.path} for ${g.user_id ? names.get(g.user_id) || g.user_id : "everyone"}` }, "Revoke");
    revoke.addEventListener("click", async () => {
      showProblem(null);
      revoke.disabled = true;
      try {
        await session.call("DELETE", `${path}/${encodeURIComponent(g.id)}`);
        await reload();
      } catch (err) {
        revoke.disabled = false;
        showProblem(err);
      }
    });
    return [h("code", {}, g.path), g.user_id ? names.get(g.user_id) || g.user_id : "everyone in the tenant", when(g.created_at), h("td", {}, revoke)];
  });
  const pathInput = h("input", { id: `grant-path-${account.id}`, name: "path", required: true, placeholder: "/alice/work/" });
  const userSelect = h("select", { id: `grant-user-${account.id}`, name: "user_id" },
    h("option", { value: "" }, "everyone in the tenant"),
    users.map((u) => h("option", { value: u.id }, `${u.display_name} <${u.email}>`)));
  const form = h("form", { class: "stack grant-form", "data-account": account.id, novalidate: true },
    h("p", {}, h("label", { for: pathInput.id }, "Collection path"), pathInput),
    h("p", {}, h("label", { for: userSelect.id }, "Granted to"), userSelect),
    h("p", { class: "actions" }, h("button", { type: "submit", class: "grant-submit" }, "Grant")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showProblem(null);
    try {
      await session.call("POST", path, { path: pathInput.value, user_id: userSelect.value || null });
      await reload();
    } catch (err) {
      showProblem(err);
    }
  });
  return h("section", { class: "calendar-grants", "data-account": account.id },
    h("h2", {}, `Grants of ${account.username} at ${account.base_url}`),
    grants.length
      ? table("Who may link which collection", ["collection", "granted to", "since", ""], rows)
      : h("p", { class: "meta" }, "No grants: nobody can link a collection of this account."),
    form);
}

export async function calendar(main, { tenantId }) {
  // Another tenant's id is the API's 404, shown as "Not found" like every page.
  await session.call("GET", `/v1/tenants/${encodeURIComponent(tenantId)}`);
  const accounts = await everyPage("/v1/calendar-accounts", 1000);
  const users = accounts.length ? await everyPage("/v1/users", 1000) : [];
  const reload = () => calendar(main, { tenantId });
  const sections = await Promise.all(accounts.map((a) => grantsSection(a, users, reload)));
  fill(main, h("h1", {}, "Calendar accounts"));
  document.title = "Calendar accounts · Meridian console";
  const notice = h("p", { id: "calendar-notice", role: "status" });
  const counts = {};
  for (const a of accounts) {
    counts[a.status] = (counts[a.status] || 0) + 1;
  }
  const summary = Object.entries(counts).map(([status, n]) => `${n} ${status}`).join(", ");
  const rows = accounts.map((a) => {
    const sync = h("button", { type: "button", class: "calendar-sync", "data-account": a.id, "aria-label": `Sync now: ${a.username} at ${a.base_url}` }, "Sync now");
    sync.addEventListener("click", async () => {
      showProblem(null);
      sync.disabled = true;
      try {
        const queued = await session.call("POST", `/v1/calendar-accounts/${encodeURIComponent(a.id)}/sync`, {});
        fill(notice, `Sync of ${a.username} queued as job ${queued.job_id}; "Refresh" shows its outcome.`);
      } catch (err) {
        showProblem(err);
      } finally {
        sync.disabled = false;
      }
    });
    return [
      h("code", {}, a.base_url), a.username,
      h("span", { class: `calendar-status ${a.status}` }, a.status),
      when(a.last_sync_at), when(a.last_success_at), lag(a),
      h("td", { class: "num" }, String(a.failure_streak)), when(a.next_sync_at),
      a.last_error || "—",
      a.last_check_at ? `${a.last_check_ok ? "reachable" : "failed"} (${when(a.last_check_at)})` : "—",
      h("td", {}, sync),
    ];
  });
  main.append(
    h("p", { class: "meta", id: "calendar-summary" }, accounts.length ? `${accounts.length} account${accounts.length === 1 ? "" : "s"}: ${summary}.` : "No calendar accounts yet."),
    notice,
    accounts.length
      ? table("Accounts and sync health", ["server", "user", "status", "last sync", "last success", "since success", "failures in a row", "next sync", "last error", "last check", ""], rows)
      : null,
    h("p", {}, h("button", { type: "button", id: "calendar-refresh", onclick: () => reload().catch(showProblem) }, "Refresh")),
    ...sections);
}
