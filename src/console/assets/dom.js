// Building the page without HTML strings: every text goes in as a text node,
// so nothing the API returns can become markup.

/** `h("p", {class: "x"}, "text", child)`: attributes as given, `on*` as listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) {
      continue;
    }
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      el.append(child instanceof Node ? child : String(child));
    }
  }
  return el;
}

/** Replaces `el`'s content. */
export function fill(el, ...children) {
  el.replaceChildren();
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      el.append(child instanceof Node ? child : String(child));
    }
  }
}

/** An API error's message, code and request id, for the alert region or a view. */
export function problemBox(err) {
  return [
    h("p", { class: "message" }, err.message || String(err)),
    err.code ? h("p", { class: "rid" }, "code ", h("code", {}, err.code)) : null,
    err.requestId ? h("p", { class: "rid" }, "request id ", h("code", { class: "request-id" }, err.requestId)) : null,
  ];
}

/** Shows `err` in the page's alert region (or hides it for null). */
export function showProblem(err) {
  const box = document.getElementById("problem");
  if (!err) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  fill(box, problemBox(err));
  box.hidden = false;
}

/** A table in its own scrolling box: `headers` and rows of cells. */
export function table(caption, headers, rows) {
  return h("div", { class: "table" },
    h("table", {},
      h("caption", { class: "meta" }, caption),
      h("thead", {}, h("tr", {}, headers.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => (c instanceof Node && c.tagName === "TD" ? c : h("td", {}, c))))))));
}

/** A byte count in B, KiB, MiB… (one decimal above bytes). */
export function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

/** A timestamp from the API in the browser's locale, or "—" for none. */
export function when(t) {
  return t ? new Date(t).toLocaleString() : "—";
}
