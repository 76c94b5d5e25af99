// The console's entry point: the hash router (`#/signin`, `#/tenants/{id}`,
// `#/tenants/{id}/members|usage|audit`), the header (pages, who is signed in,
// sign out), and start-up (an OIDC return, or resuming the session a reload
// left in the cookie). Routing by the URL's hash keeps the server to one page.
// Platform staff get `#/platform/regions|top|tenants` (`platform.js`); while a
// platform admin impersonates a tenant, the tenant pages under its banner.

import * as acting from "./acting.js";
import { fill, h, showProblem } from "./dom.js";
import * as platform from "./platform.js";
import * as session from "./session.js";
import * as views from "./views.js";
import * as compliance from "./compliance.js";
import { webhooks } from "./webhooks.js";
import { impersonations } from "./impersonations.js";
import { calendar } from "./calendar.js";

const main = document.getElementById("main");
const PAGES = { "": views.overview, members: views.members, usage: views.usage, audit: views.audit };
PAGES.exports = compliance.exports;
PAGES.residency = compliance.residency;
PAGES.webhooks = webhooks;
PAGES.impersonations = impersonations;
PAGES.calendar = calendar;

function parse(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "tenants" && parts[1]) {
    return { tenantId: parts[1], page: parts[2] || "" };
  }
  if (parts[0] === "platform") {
    return { platform: parts[1] || "regions" };
  }
  return { signin: parts[0] === "signin" || parts[0] === "" };
}

function header(route) {
  const nav = document.getElementById("nav");
  const whoBox = document.getElementById("who");
  const me = session.who();
  if (!me) {
    fill(nav);
    fill(whoBox);
    return;
  }
  const tenantId = route.tenantId || me.tenantId;
  const links = me.kind === "platform"
    ? platform.pagesFor(me.role).map(([page, label]) =>
      h("a", { href: `#/platform/${page}`, "aria-current": route.platform === page ? "page" : false }, label))
    : views.pagesFor(me.role).map(([page, label]) => {
      const href = `#/tenants/${encodeURIComponent(tenantId)}${page ? `/${page}` : ""}`;
      return h("a", { href, "aria-current": route.tenantId && route.page === page ? "page" : false }, label);
    });
  fill(nav, links);
  fill(whoBox,
    h("span", { id: "signed-in-as" }, "Signed in as ", h("strong", { id: "role" }, me.role)),
    h("button", { type: "button", id: "signout", onclick: signOut }, "Sign out"));
}

async function signOut() {
  try {
    await session.signOut();
    showProblem(null);
  } catch (err) {
    showProblem(err);
  }
  if (location.hash === "#/signin") {
    await render();
  } else {
    location.hash = "#/signin";
  }
}

let wanted = null;

async function render() {
  const route = parse(location.hash);
  const me = session.who();
  if (!me) {
    if (route.tenantId) {
      wanted = location.hash;
    }
    header({});
    platform.banner();
    const page = freshPage();
    views.signIn(page, { onDone: afterSignIn });
    page.append(platform.signInEntry());
    return;
  }
  platform.banner();
  if (me.kind === "platform") {
    await renderPlatform(route, me);
    return;
  }
  if (!route.tenantId) {
    location.replace(`#/tenants/${encodeURIComponent(me.tenantId)}`);
    return;
  }
  header(route);
  const view = PAGES[route.page];
  const page = freshPage();
  if (!view) {
    views.failed(page, new Error(`No page “${route.page}”.`));
    return;
  }
  fill(page, h("p", {}, "Loading…"));
  try {
    await view(page, { tenantId: route.tenantId, role: me.role });
  } catch (err) {
    views.failed(page, err);
  }
  main.focus();
}

async function renderPlatform(route, me) {
  const view = platform.PAGES[route.platform];
  if (!view) {
    location.replace("#/platform/regions");
    return;
  }
  header(route);
  const page = freshPage();
  fill(page, h("p", {}, "Loading…"));
  try {
    await view(page, { role: me.role });
  } catch (err) {
    views.failed(page, err);
  }
  platform.notice(page);
  main.focus();
}

// Each render draws into a container of its own. A page still loading when the
// user navigates on then fills a container that is no longer in the document,
// instead of replacing the newer page when its answers arrive.
function freshPage() {
  const page = h("div", { class: "page" });
  fill(main, page);
  return page;
}

function home(me) {
  return me.kind === "platform" ? "#/platform/regions" : `#/tenants/${encodeURIComponent(me.tenantId)}`;
}

function afterSignIn() {
  const me = session.who();
  const target = wanted || home(me);
  wanted = null;
  if (location.hash === target) {
    render();
  } else {
    location.hash = target;
  }
}

async function start() {
  const query = new URLSearchParams(location.search);
  try {
    if (query.has("code") && query.has("state")) {
      // Back from the identity provider: the code is used once, then dropped from the URL.
      // A platform sign-in's state is `mps_…` (a tenant's `mst_…`).
      history.replaceState(null, "", location.pathname);
      const finish = query.get("state").startsWith("mps_") ? session.finishPlatformOidc : session.finishOidc;
      await finish(query.get("code"), query.get("state"));
    } else {
      await session.resume();
    }
  } catch (err) {
    showProblem(err);
  }
  acting.onEnd(platform.ended);
  window.addEventListener("hashchange", () => {
    showProblem(null);
    render();
  });
  await render();
}

start();
