// The platform's "Top tenants" page (`#/platform/top`, platform admins and
// operators): a region's tenants ranked by requests, jobs, storage or AI
// tokens over the last hours, in the order `GET
// /v1/regions/{id}/top-tenants` gives (the ranking is the API's, from its
// hourly samples; the page sorts nothing). Ids, slugs and counters only: the
// view operators get too.

import { bytes, fill, h, showProblem, table } from "./dom.js";
import * as session from "./session.js";

const LOADS = [["requests", "Requests"], ["jobs", "Jobs created"], ["storage", "Storage"], ["ai_tokens", "AI tokens (month)"]];
const WINDOWS = [[1, "last hour"], [24, "last 24 hours"], [168, "last 7 days"], [744, "last 31 days"]];

export async function top(main) {
  const topology = await session.call("GET", "/v1/regions");
  document.title = "Top tenants · Meridian console";
  const form = h("form", { class: "inline", id: "top-form" },
    h("label", {}, "Region", h("select", { name: "region", id: "top-region" },
      topology.regions.map((r) => h("option", { value: r.id, selected: r.id === topology.region }, r.id)))),
    h("label", {}, "By", h("select", { name: "by", id: "top-by" },
      LOADS.map(([v, label]) => h("option", { value: v }, label)))),
    h("label", {}, "Window", h("select", { name: "hours", id: "top-hours" },
      WINDOWS.map(([v, label]) => h("option", { value: v, selected: v === 24 }, label)))),
    h("button", { type: "submit", id: "top-submit" }, "Show"));
  const list = h("div", { id: "top-list", "aria-live": "polite" });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showProblem(null);
    try {
      await show(list, form);
    } catch (err) {
      showProblem(err);
    }
  });
  fill(main, h("h1", {}, "Top tenants"), form, list);
  await show(list, form);
}

async function show(list, form) {
  const data = new FormData(form);
  const query = new URLSearchParams({ by: data.get("by"), hours: data.get("hours"), limit: "20" });
  const result = await session.call("GET", `/v1/regions/${encodeURIComponent(data.get("region"))}/top-tenants?${query}`);
  const label = LOADS.find(([v]) => v === result.by)?.[1] || result.by;
  const since = new Date(result.from).toISOString().replace(":00.000Z", " UTC").replace("T", " ");
  fill(list, result.items.length === 0
    ? h("p", { id: "top-empty" }, `No tenant of ${result.region} used anything since ${since}.`)
    : table(`${result.region}: top ${result.items.length} by ${label.toLowerCase()} since ${since}`,
      ["#", "tenant", "requests", "jobs", "storage", "AI tokens"],
      result.items.map((t, i) => [
        String(i + 1), h("td", { class: "top-slug" }, h("strong", {}, t.slug)), String(t.requests), String(t.jobs),
        bytes(t.storage_bytes), String(t.ai_tokens),
      ])));
}
