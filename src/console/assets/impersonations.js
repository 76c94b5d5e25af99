// The tenant's active impersonations (`#/tenants/{id}/impersonations`): who
// from the platform is acting in the tenant, why, in which mode and until
// when (`GET /v1/tenants/{id}/impersonations`, owners and compliance
// officers), and **Revoke** for owners (`DELETE …/{impersonation_id}`; the
// impersonation's token is refused from its next request). The API's rules:
// compliance officers see the list but cannot revoke.

import { fill, h, showProblem, table } from "./dom.js";
import * as session from "./session.js";

export const OVERSEERS = ["owner", "compliance"];

export async function impersonations(main, { tenantId, role }) {
  const base = `/v1/tenants/${encodeURIComponent(tenantId)}/impersonations`;
  const page = await session.call("GET", base);
  fill(main, h("h1", {}, "Active impersonations"));
  document.title = "Impersonations · Meridian console";
  const owner = role === "owner";
  const rows = page.items.map((i) => {
    const cells = [
      h("span", { class: "mono" }, i.actor), i.reason, h("span", { class: "imp-mode" }, i.mode),
      new Date(i.created_at).toLocaleString(), new Date(i.expires_at).toLocaleString(),
    ];
    if (owner) {
      cells.push(h("td", {}, h("button", { type: "button", class: "imp-revoke", "aria-label": `Revoke ${i.actor}'s impersonation`,
        onclick: async () => {
          showProblem(null);
          try {
            await session.call("DELETE", `${base}/${encodeURIComponent(i.id)}`);
          } catch (err) {
            showProblem(err);
            return;
          }
          await impersonations(main, { tenantId, role });
        } }, "Revoke")));
    }
    return cells;
  });
  const headers = ["platform admin", "reason", "mode", "started", "expires"];
  if (owner) {
    headers.push("actions");
  }
  main.append(
    h("p", {}, "Platform admins acting in this tenant now. Each start is in the tenant's audit trail with its reason."),
    page.items.length
      ? h("div", { id: "impersonations" }, table("Active impersonations", headers, rows))
      : h("p", { class: "meta", id: "impersonations" }, "None active."));
}
