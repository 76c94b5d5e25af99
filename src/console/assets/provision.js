// The platform's "New tenant" page (`#/platform/new`, platform admins):
// slug, name, plan, home region (from `GET /v1/regions`), residency and the
// owner, sent as one `POST /v1/tenants`. Validation is the API's: the page
// checks nothing itself, and shows a refusal beside the field its detail
// names (`slug`, `name`, `email`, `owner.display_name`, …) with its code and
// request id. After the creation: the tenant, and "View as…" (impersonation,
// `platform.js`). An operator reaching the URL sees the API's refusal of the
// directory (`403 operator_forbidden`), not a form.

import { fill, h, problemBox, showProblem, table } from "./dom.js";
import * as session from "./session.js";

const PLANS = ["free", "pro", "enterprise"];

/** The field a problem's detail names first (`` `slug` must … ``), if any. */
function namedField(err) {
  const match = /`([a-z_.]+)`/.exec(err.message || "");
  return match ? match[1] : null;
}

function field(label, name, input) {
  return h("div", { class: "field", "data-field": name },
    h("label", { for: input.id }, label), input,
    h("p", { class: "field-error", id: `${input.id}-error`, hidden: true }));
}

export async function provision(main, { viewAs }) {
  // The directory is the platform admin's: an operator gets the API's refusal here.
  await session.call("GET", "/v1/tenants?limit=1");
  const topology = await session.call("GET", "/v1/regions");
  document.title = "New tenant · Meridian console";
  const regions = topology.regions;
  const form = h("form", { class: "stack", id: "provision-form", novalidate: true },
    field("Slug", "slug", h("input", { id: "new-slug", name: "slug", autocomplete: "off" })),
    field("Name", "name", h("input", { id: "new-name", name: "name" })),
    field("Plan", "plan", h("select", { id: "new-plan", name: "plan" }, PLANS.map((p) => h("option", { value: p }, p)))),
    field("Home region", "home_region", h("select", { id: "new-region", name: "home_region" },
      regions.map((r) => h("option", { value: r.id }, `${r.id} (${r.jurisdiction})`)))),
    field("Residency", "residency", h("select", { id: "new-residency", name: "residency" },
      h("option", { value: "" }, "any region"),
      h("option", { value: "jurisdiction" }, "the home region's jurisdiction"),
      h("option", { value: "home" }, "the home region only"))),
    field("Owner's email", "email", h("input", { id: "new-owner-email", name: "email", type: "email", autocomplete: "off" })),
    field("Owner's name", "owner.display_name", h("input", { id: "new-owner-name", name: "display_name" })),
    h("div", { id: "provision-problem", class: "problem", role: "alert", hidden: true }),
    h("p", { class: "actions" }, h("button", { type: "submit", id: "provision-submit" }, "Create tenant")));
  const result = h("div", { id: "provision-result", "aria-live": "polite" });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showProblem(null);
    clearErrors(form);
    const data = new FormData(form);
    const home = regions.find((r) => r.id === data.get("home_region"));
    const body = {
      slug: String(data.get("slug")).trim(), name: String(data.get("name")).trim(),
      plan: data.get("plan"), home_region: data.get("home_region"),
      owner: { email: String(data.get("email")).trim(), display_name: String(data.get("display_name")).trim() },
    };
    if (data.get("residency") === "jurisdiction" && home) {
      body.residency = { jurisdiction: home.jurisdiction };
    } else if (data.get("residency") === "home") {
      body.residency = { regions: [body.home_region] };
    }
    try {
      const created = await session.call("POST", "/v1/tenants", body);
      form.reset();
      const tenant = { id: created.id, slug: created.slug };
      fill(result, h("p", { id: "provision-done", class: "notice", role: "status" }, `Created ${created.slug} (${created.id}) in ${created.home_region}, plan ${created.plan}.`),
        table("The new tenant", ["slug", "home region", "owner", ""], [[
          h("strong", {}, created.slug), created.home_region, body.owner.email,
          h("td", {}, h("button", { type: "button", class: "view-as", "data-tenant": created.id, onclick: (e) => viewAs(e.target, tenant) }, `View as ${created.slug}…`)),
        ]]));
    } catch (err) {
      showError(form, err);
    }
  });
  fill(main, h("h1", {}, "New tenant"), form, result);
}

function clearErrors(form) {
  for (const box of form.querySelectorAll(".field-error")) {
    box.hidden = true;
    box.replaceChildren();
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
  }
  const problem = form.querySelector("#provision-problem");
  problem.hidden = true;
  problem.replaceChildren();
}

/** The refusal beside the field it names (else above the button), with code and request id. */
function showError(form, err) {
  const name = namedField(err);
  const wrap = name && form.querySelector(`div.field[data-field="${name}"]`);
  if (wrap) {
    const input = wrap.querySelector("input, select");
    const box = wrap.querySelector(".field-error");
    fill(box, problemBox(err));
    box.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", box.id);
    input.focus();
    return;
  }
  const problem = form.querySelector("#provision-problem");
  fill(problem, problemBox(err));
  problem.hidden = false;
}
