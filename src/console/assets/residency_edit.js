// Changing the tenant's residency policy from the residency page: compliance
// officers only (the API's rule for `PATCH /v1/tenants/{id}` `residency`). The
// choices are the topology's (`GET /v1/regions`): any region (no policy), one
// jurisdiction, or a list of regions. Whether a policy is allowed is the API's
// decision (the home region, a relocation's target): its refusal
// (`400 residency_violation`, `409 residency_conflict`, …) is shown with its
// message, code and request id, and nothing is reloaded; a change reloads the
// page, so the report and its policy history are the API's after the change.

import { h, showProblem } from "./dom.js";
import * as session from "./session.js";

export const EDITORS = ["compliance"];

/** The form, preset to `current` (the report's policy); `reload` re-renders
 * the page after a change. */
export async function policyForm(tenantId, current, reload) {
  const topology = await session.call("GET", "/v1/regions");
  const regions = topology.regions.map((r) => r.id).sort();
  const jurisdictions = [...new Set(topology.regions.map((r) => r.jurisdiction))].sort();
  const kind = !current ? "none" : current.jurisdiction ? "jurisdiction" : "regions";
  const radio = (value, label) => h("label", { class: "check" },
    h("input", { type: "radio", name: "kind", value, checked: kind === value }), label);
  const jurisdiction = h("select", { id: "policy-jurisdiction", name: "jurisdiction", "aria-label": "Jurisdiction" },
    jurisdictions.map((j) => h("option", { value: j, selected: current?.jurisdiction === j }, j)));
  const boxes = regions.map((id) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "region", value: id, checked: (current?.regions || []).includes(id) }), id));
  const form = h("form", { id: "policy-form", class: "stack" },
    h("fieldset", {},
      h("legend", {}, "New policy"),
      radio("none", "Any region (no policy)"),
      radio("jurisdiction", "One jurisdiction:"), jurisdiction,
      radio("regions", "These regions:"),
      h("div", { class: "checks", role: "group", "aria-label": "Regions" }, boxes)),
    h("p", {}, h("button", { type: "submit", id: "policy-save" }, "Save policy")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const residency = {
      none: null,
      jurisdiction: { jurisdiction: data.get("jurisdiction") },
      regions: { regions: data.getAll("region") },
    }[data.get("kind")];
    showProblem(null);
    try {
      await session.call("PATCH", `/v1/tenants/${encodeURIComponent(tenantId)}`, { residency });
    } catch (err) {
      showProblem(err);
      return;
    }
    await reload();
  });
  return form;
}
