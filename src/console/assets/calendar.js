// The calendar page (`#/tenants/{id}/calendar`, owners and admins: the API's
// rule for `/v1/calendar-accounts`): the tenant's CalDAV accounts and their sync
// health as the API stores it — status (pending, ok, failing, unauthorized),
// last sync and last success, how long since that success, failures in a row,
// next scheduled sync, the last error and the last server check — with "Sync
// now" per account (`POST /v1/calendar-accounts/{id}/sync`: a job). The account's
// password or token is never in an answer, so never on the page.

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

export async function calendar(main, { tenantId }) {
  // Another tenant's id is the API's 404, shown as "Not found" like every page.
  await session.call("GET", `/v1/tenants/${encodeURIComponent(tenantId)}`);
  const accounts = [];
  let cursor = null;
  do {
    const page = await session.call("GET", `/v1/calendar-accounts?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    accounts.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && accounts.length < 1000);
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
    h("p", {}, h("button", { type: "button", id: "calendar-refresh", onclick: () => calendar(main, { tenantId }).catch(showProblem) }, "Refresh")));
}
