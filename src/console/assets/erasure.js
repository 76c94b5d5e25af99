// User erasure from the members page, for owners and compliance officers (the
// API's rule for `POST /v1/users/{id}/erasure`): a confirmation step naming the
// user and the tenant's erasure policy, then the erasure's progress and, once
// its job is done, the signed receipt (`GET /v1/erasures/{id}`). The API
// refuses what the role or the tenant does not allow (`409 last_owner` for the
// last active owner); the refusal is shown with its message and request id.

import { fill, h, problemBox, table, when } from "./dom.js";
import * as session from "./session.js";

export const ERASERS = ["owner", "compliance"];

// What each policy does to the user's messages (README "Compliance").
const POLICY = {
  anonymize: "their messages are kept, attributed to an erased user",
  delete: "their messages are deleted",
};

// A job erases in batches; the page asks for progress once a second and gives
// up asking (not the erasure) after two minutes, leaving a "Check again".
const POLL_MS = 1000;
const POLLS = 120;

/** The "Erase user" button of `user`'s row; the steps show in `panel`. */
export function eraseButton(user, tenantId, panel) {
  return h("button", {
    type: "button",
    class: "erase-user",
    "aria-label": `Erase user ${user.display_name} (${user.email})`,
    onclick: () => confirmErasure(user, tenantId, panel),
  }, "Erase user");
}

/** The panel the steps show in, hidden until a button opens it. */
export function erasurePanel() {
  return h("section", { id: "erasure-panel", class: "panel", hidden: true, "aria-labelledby": "erasure-heading" });
}

function heading(panel, text) {
  const h2 = h("h2", { id: "erasure-heading", tabindex: "-1" }, text);
  fill(panel, h2);
  panel.hidden = false;
  h2.focus();
  return h2;
}

async function confirmErasure(user, tenantId, panel) {
  heading(panel, `Erase ${user.display_name}?`);
  let policy;
  try {
    policy = (await session.call("GET", `/v1/tenants/${encodeURIComponent(tenantId)}/erasure-policy`)).erasure;
  } catch (err) {
    panel.append(...problemBox(err).filter(Boolean));
    return;
  }
  const confirm = h("button", { type: "button", id: "erasure-confirm", class: "danger" }, `Erase ${user.display_name}`);
  confirm.addEventListener("click", () => start(user, panel));
  const cancel = h("button", { type: "button", id: "erasure-cancel", onclick: () => {
    fill(panel);
    panel.hidden = true;
  } }, "Cancel");
  panel.append(
    h("p", {}, `${user.display_name} (${user.email}) will be erased from this tenant. This cannot be undone.`),
    h("p", {}, "The tenant's erasure policy is ", h("strong", { id: "erasure-policy" }, policy),
      `: ${POLICY[policy] ?? "as the tenant's policy says"}.`),
    h("p", { class: "inline" }, confirm, " ", cancel));
}

async function start(user, panel) {
  heading(panel, `Erasing ${user.display_name}`);
  const status = h("div", { id: "erasure-status", "aria-live": "polite" }, "Asking for the erasure…");
  panel.append(status);
  let erasure;
  try {
    erasure = await session.call("POST", `/v1/users/${encodeURIComponent(user.id)}/erasure`);
  } catch (err) {
    fill(status, h("div", { class: "problem", id: "erasure-problem" }, problemBox(err)));
    return;
  }
  await follow(erasure, status, panel);
}

async function follow(first, status, panel) {
  let erasure = first;
  for (let i = 0; erasure.state !== "done"; i += 1) {
    fill(status, progress(erasure));
    if (i === POLLS) {
      status.append(h("p", {}, h("button", { type: "button", onclick: () => follow(erasure, status, panel) }, "Check again")));
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (!panel.isConnected) {
      return;
    }
    try {
      erasure = await session.call("GET", `/v1/erasures/${encodeURIComponent(erasure.id)}`);
    } catch (err) {
      fill(status, h("div", { class: "problem" }, problemBox(err)));
      return;
    }
  }
  fill(status, receipt(erasure));
}

function counts(caption, id, byTable) {
  const rows = Object.entries(byTable || {}).sort(([a], [b]) => a.localeCompare(b))
    .map(([name, n]) => [h("code", {}, name), h("td", { class: "num" }, String(n))]);
  const box = table(caption, ["table", "rows"], rows);
  box.id = id;
  return box;
}

function progress(erasure) {
  return [
    h("p", {}, "Erasure ", h("code", { id: "erasure-id" }, erasure.id), " is ",
      h("span", { class: "erasure-state" }, erasure.state), "."),
    counts("Rows changed or removed so far", "erasure-progress", erasure.counts),
  ];
}

function receipt(erasure) {
  const signed = erasure.receipt || {};
  const r = signed.receipt || {};
  const sig = signed.signature || {};
  return [
    h("p", {}, "Erasure ", h("code", { id: "erasure-id" }, erasure.id), " is ",
      h("span", { class: "erasure-state" }, erasure.state), ". Its signed receipt:"),
    h("dl", { id: "erasure-receipt" },
      h("dt", {}, "user"), h("dd", {}, h("code", {}, r.user_id ?? erasure.user_id)),
      h("dt", {}, "policy"), h("dd", {}, r.policy ?? erasure.policy),
      h("dt", {}, "asked for by"), h("dd", {}, h("code", { id: "receipt-by" }, r.requested_by ?? "—")),
      h("dt", {}, "asked for"), h("dd", {}, when(r.requested_at)),
      h("dt", {}, "completed"), h("dd", {}, when(r.completed_at)),
      h("dt", {}, "signing key"), h("dd", {}, h("code", { id: "receipt-key" }, sig.key_id ?? "—")),
      h("dt", {}, "signature"), h("dd", {}, h("code", { id: "receipt-signature", class: "wrap" }, sig.signature ?? "—"))),
    counts("Rows changed or removed, per table (receipt)", "erasure-counts", r.counts),
  ];
}
