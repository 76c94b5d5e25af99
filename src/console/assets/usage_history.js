// The usage page's history: `GET /v1/usage/history` (hourly samples, or UTC
// days) as four charts, requests and jobs per bucket as bars, storage and AI
// tokens as lines, each with its table (charts.js).

import { bucketLabel, chart } from "./charts.js";
import { bytes, fill, h, problemBox } from "./dom.js";
import * as session from "./session.js";

async function draw(box, bucket) {
  fill(box, h("p", {}, "Loading…"));
  try {
    const hist = await session.call("GET", `/v1/usage/history?bucket=${bucket}`);
    const series = (key) => hist.buckets.map((b) => ({ label: bucketLabel(b.start, bucket), value: b[key] }));
    const per = bucket === "day" ? "per day" : "per hour";
    fill(box,
      h("p", { class: "meta", id: "history-range" },
        `${hist.buckets.length} ${bucket === "day" ? "days" : "hours"} with activity between `,
        h("time", { datetime: hist.from }, hist.from), " and ", h("time", { datetime: hist.to }, hist.to),
        " (UTC; a bucket without a sample had no requests or jobs, and the gauges of the one before)."),
      h("div", { class: "charts" },
        chart({ id: "chart-requests", title: `Requests ${per}`, points: series("requests") }),
        chart({ id: "chart-jobs", title: `Background jobs ${per}`, points: series("jobs") }),
        chart({ id: "chart-storage", title: "Storage", points: series("storage_bytes"), kind: "line", format: bytes }),
        chart({ id: "chart-ai", title: "AI tokens used this month", points: series("ai_tokens"), kind: "line" })));
  } catch (err) {
    fill(box, h("div", { class: "problem" }, problemBox(err)));
  }
}

/** The history section, appended to `main`. */
export async function usageHistory(main) {
  const box = h("div", { id: "usage-history", "aria-live": "polite" });
  const select = h("select", { id: "history-bucket", name: "bucket" },
    h("option", { value: "hour" }, "hours (last 48)"),
    h("option", { value: "day" }, "days (last 30)"));
  select.addEventListener("change", () => draw(box, select.value));
  main.append(
    h("h2", {}, "Over time"),
    h("form", { class: "inline" }, h("label", {}, "Buckets", select)),
    box);
  await draw(box, "hour");
}
