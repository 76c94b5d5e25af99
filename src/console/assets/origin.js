// Before a sign-in the console asks which region's node should serve the tenant
// (`GET /v1/auth/{slug}/origin`). When that is another origin, the browser goes
// there with the slug and username in the URL (never the password), and signs in
// there: the session's cookie and every later API call then stay on one origin
// that may serve the tenant, with no cross-origin redirect (which `api.js`
// refuses) and no forwarding hop per request.

import { request } from "./api.js";

const arrival = new URLSearchParams(location.search);
const arrived = { slug: arrival.get("tenant") || "", username: arrival.get("user") || "" };
if (arrival.has("tenant")) {
  // Read once; the address bar keeps only the page.
  history.replaceState(null, "", location.pathname + location.hash);
}

/** The slug and username another node's console sent the browser here with. */
export function arrivedWith() {
  return arrived;
}

/** Sends the browser to the console at the tenant's serving origin when that
 * is not this one; true when it did (the caller stops there). */
export async function goToServingOrigin(slug, username = "") {
  const where = await request("GET", `/v1/auth/${encodeURIComponent(slug)}/origin`);
  if (where.served_here || !where.origin) {
    return false;
  }
  const next = new URL("/console/", where.origin);
  if (!["http:", "https:"].includes(next.protocol) || next.origin === location.origin) {
    return false;
  }
  next.searchParams.set("tenant", slug);
  if (username) {
    next.searchParams.set("user", username);
  }
  next.hash = "#/signin";
  location.assign(next.href);
  return true;
}
