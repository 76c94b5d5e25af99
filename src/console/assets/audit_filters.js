// The audit page's filters: action, actor and a time range, sent as
// `GET /v1/audit` query parameters (the API filters; the console only builds
// the query). Times are entered in the browser's local time and sent as UTC.

import { h } from "./dom.js";

/** A labelled form; `onApply(params)` gets the non-empty filters as a plain object. */
export function auditFilterForm(onApply) {
  const form = h("form", { class: "inline", id: "audit-filters" },
    h("label", {}, "Action", h("input", { name: "action", id: "filter-action", maxlength: 100, placeholder: "e.g. user_updated" })),
    h("label", {}, "Actor", h("input", { name: "actor", id: "filter-actor", maxlength: 200, placeholder: "user id or admin" })),
    h("label", {}, "From", h("input", { name: "from", id: "filter-from", type: "datetime-local" })),
    h("label", {}, "To", h("input", { name: "to", id: "filter-to", type: "datetime-local" })),
    h("button", { type: "submit", id: "filter-apply" }, "Filter"),
    h("button", { type: "reset", id: "filter-clear" }, "Clear"));
  const params = () => {
    const out = {};
    for (const [name, value] of new FormData(form)) {
      const v = String(value).trim();
      if (v) {
        out[name] = name === "from" || name === "to" ? new Date(v).toISOString() : v;
      }
    }
    return out;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onApply(params());
  });
  form.addEventListener("reset", () => setTimeout(() => onApply({}), 0));
  return form;
}
