// The webhooks page (`#/tenants/{id}/webhooks`, owners and admins: the API's
// rule for `/v1/webhooks`): the tenant's endpoints, adding one (URL,
// description, event types), enabling or disabling, deleting (a second click
// confirms), and each endpoint's delivery log (`GET /v1/webhooks/{id}/deliveries`:
// state, attempts, last status and error, times). The signing secret is shown
// once, in the answer that creates the endpoint, as the API gives it.

import { fill, h, showProblem, table, when } from "./dom.js";
import * as session from "./session.js";

export async function webhooks(main, { tenantId }) {
  // Another tenant's id is the API's 404, shown as "Not found" like every page.
  await session.call("GET", `/v1/tenants/${encodeURIComponent(tenantId)}`);
  const page = await session.call("GET", "/v1/webhooks?limit=200");
  fill(main, h("h1", {}, "Webhooks"));
  document.title = "Webhooks · Meridian console";
  const log = h("section", { id: "deliveries", "aria-live": "polite" });
  const reload = (notice) => webhooks(main, { tenantId }).then(() => notice && main.prepend(notice));
  const act = async (method, path, body) => {
    showProblem(null);
    try {
      await session.call(method, path, body);
    } catch (err) {
      showProblem(err);
      return;
    }
    await reload();
  };
  const rows = page.items.map((w) => {
    const path = `/v1/webhooks/${encodeURIComponent(w.id)}`;
    const toggle = h("button", { type: "button", class: "webhook-toggle", "aria-label": `${w.enabled ? "Disable" : "Enable"} ${w.url}`,
      onclick: () => act("PATCH", path, { enabled: !w.enabled }) }, w.enabled ? "Disable" : "Enable");
    const remove = h("button", { type: "button", class: "webhook-delete", "aria-label": `Delete ${w.url}` }, "Delete");
    remove.addEventListener("click", () => {
      if (remove.dataset.armed) {
        act("DELETE", path);
        return;
      }
      remove.dataset.armed = "yes";
      fill(remove, "Really delete?");
      remove.setAttribute("aria-label", `Really delete ${w.url}?`);
    });
    const show = h("button", { type: "button", class: "webhook-deliveries", "aria-label": `Deliveries of ${w.url}`,
      onclick: () => deliveries(log, w) }, "Deliveries");
    return [
      h("code", {}, w.url),
      w.description || "—",
      w.event_types.length ? w.event_types.join(", ") : "all",
      h("span", { class: "webhook-state" }, w.enabled ? "enabled" : `disabled${w.disabled_reason ? `: ${w.disabled_reason}` : ""}`),
      h("td", { class: "num" }, String(w.failure_streak)),
      h("td", {}, toggle, " ", show, " ", remove),
    ];
  });
  main.append(
    page.items.length
      ? table("Endpoints", ["URL", "description", "events", "state", "failures in a row", "actions"], rows)
      : h("p", { class: "meta" }, "No webhooks yet."),
    log,
    h("h2", {}, "Add a webhook"),
    addForm(reload));
}

function addForm(reload) {
  const form = h("form", { class: "inline", id: "add-webhook" },
    h("label", {}, "URL", h("input", { name: "url", type: "url", required: true, placeholder: "http://hooks.example/in" })),
    h("label", {}, "Description", h("input", { name: "description" })),
    h("label", {}, "Event types (comma-separated; empty: all)", h("input", { name: "events", placeholder: "message.posted, user.added" })),
    h("button", { type: "submit" }, "Add webhook"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const events = String(data.get("events")).split(",").map((e) => e.trim()).filter(Boolean);
    const body = { url: String(data.get("url")).trim(), event_types: events };
    if (String(data.get("description")).trim()) {
      body.description = String(data.get("description")).trim();
    }
    showProblem(null);
    let created;
    try {
      created = await session.call("POST", "/v1/webhooks", body);
    } catch (err) {
      showProblem(err);
      return;
    }
    await reload(h("p", { class: "notice", id: "webhook-secret" },
      `Added ${created.url}. Its signing secret, shown only now: `, h("code", {}, created.secret)));
  });
  return form;
}

async function deliveries(log, w) {
  showProblem(null);
  let page;
  try {
    page = await session.call("GET", `/v1/webhooks/${encodeURIComponent(w.id)}/deliveries?limit=50`);
  } catch (err) {
    showProblem(err);
    return;
  }
  fill(log, h("h2", {}, `Deliveries to ${w.url}, newest first`),
    h("p", {}, h("button", { type: "button", id: "deliveries-refresh", onclick: () => deliveries(log, w) }, "Refresh")),
    page.items.length
      ? table("Deliveries", ["event", "seq", "state", "attempts", "last status", "last error", "created", "delivered"],
        page.items.map((d) => [
          h("code", {}, d.event_type), h("td", { class: "num" }, String(d.seq)),
          h("span", { class: "delivery-state" }, d.state), h("td", { class: "num" }, String(d.attempts)),
          d.last_status ?? "—", d.last_error || "—", when(d.created_at), when(d.delivered_at),
        ]))
      : h("p", { class: "meta" }, "No deliveries yet."));
}
