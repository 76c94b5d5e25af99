// The signed-in session. The access token lives in this module's memory only
// (never in storage a script could read later); the refresh token is the
// HttpOnly `__Secure-mrt` cookie on `/v1/auth`, which no script can read. The
// CSRF token that must accompany the cookie is kept in `sessionStorage` (this
// tab only) so a reload can resume the session: on its own it is worthless
// (it is a hash of the refresh token, and the cookie is `SameSite=Strict`).
// The access token is refreshed a minute before it expires.
// A platform session (platform OIDC) is the same, in the platform's own cookie
// (`__Secure-mpr` on `/v1/auth/platform`) and routes; which kind this tab holds
// is kept beside the CSRF token. While a platform admin impersonates a tenant
// (`acting.js`), API calls carry the impersonation's token instead.

import * as acting from "./acting.js";
import { ApiError, request, requestBlob } from "./api.js";

const CSRF_KEY = "meridian.console.csrf";
const KIND_KEY = "meridian.console.kind";
const AUTH = { tenant: "/v1/auth", platform: "/v1/auth/platform" };
let current = null;
let timer = null;
let refreshing = null;

/** `{tenantId, userId, role, kind}` of the signed-in user, or null. While
 * impersonating: the tenant and role of the impersonation, and `acting`. */
export function who() {
  if (!current) {
    return null;
  }
  const imp = acting.current();
  if (imp) {
    return { tenantId: imp.tenantId, userId: null, role: imp.role, kind: "tenant", acting: imp, platformRole: current.role };
  }
  return { tenantId: current.tenantId, userId: current.userId, role: current.role, kind: current.kind };
}

function adopt(s, kind = "tenant") {
  current = { access: s.access_token, tenantId: s.tenant_id, userId: s.user_id, role: s.role, kind };
  sessionStorage.setItem(CSRF_KEY, s.csrf_token);
  sessionStorage.setItem(KIND_KEY, kind);
  clearTimeout(timer);
  const seconds = Math.max(5, (s.expires_in || 60) - 60);
  timer = setTimeout(() => refresh().catch(() => {}), seconds * 1000);
}

function forget() {
  current = null;
  acting.stop();
  clearTimeout(timer);
  sessionStorage.removeItem(CSRF_KEY);
  sessionStorage.removeItem(KIND_KEY);
}

function auth() {
  return AUTH[sessionStorage.getItem(KIND_KEY)] || AUTH.tenant;
}

/** Password sign-in against the tenant's LDAP. */
export async function signInLdap(slug, username, password) {
  const path = `/v1/auth/${encodeURIComponent(slug)}/ldap?session=cookie`;
  adopt(await request("POST", path, { body: { username, password } }));
}

/** The OIDC callback's `code` and `state` (the provider sent the browser back here). */
export async function finishOidc(code, state) {
  const query = new URLSearchParams({ code, state, session: "cookie" });
  adopt(await request("GET", `/v1/auth/oidc/callback?${query}`));
}

/** The platform OIDC callback's `code` and `state` (a platform sign-in). */
export async function finishPlatformOidc(code, state) {
  const query = new URLSearchParams({ code, state, session: "cookie" });
  adopt(await request("GET", `/v1/auth/platform/oidc/callback?${query}`), "platform");
}

/** Rotates the cookie into a new access token; false when the session is over. */
export function refresh() {
  const csrf = sessionStorage.getItem(CSRF_KEY);
  if (!csrf) {
    return Promise.resolve(false);
  }
  const kind = sessionStorage.getItem(KIND_KEY) || "tenant";
  refreshing ??= request("POST", `${auth()}/refresh`, { body: {}, headers: { "X-Meridian-CSRF": csrf } })
    .then((s) => { adopt(s, kind); return true; })
    .catch((err) => {
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) {
        forget();
        return false;
      }
      throw err;
    })
    .finally(() => { refreshing = null; });
  return refreshing;
}

/** After a reload: back into the session the cookie still holds, if any. */
export async function resume() {
  return current !== null || refresh();
}

export async function signOut() {
  const csrf = sessionStorage.getItem(CSRF_KEY);
  try {
    if (csrf) {
      await request("POST", `${auth()}/logout`, { body: {}, headers: { "X-Meridian-CSRF": csrf } });
    }
  } finally {
    forget();
  }
}

/** An API call as the signed-in user (or the impersonation it acts as); one
 * refresh and retry on a 401. An impersonation's 401 means it was revoked or
 * has expired: it ends (`acting.js`), there is nothing to refresh. */
export async function call(method, path, body) {
  if (!current) {
    throw new ApiError(401, { title: "Not signed in" });
  }
  const imp = acting.current();
  if (imp) {
    try {
      return await request(method, path, { body, headers: { Authorization: `Bearer ${imp.access}` } });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        acting.end("revoked or expired (the API refused its token)");
      }
      throw err;
    }
  }
  return platformCall(method, path, body);
}

/** An API call with the signed-in user's own token, even while impersonating
 * (ending an impersonation is the platform admin's call). */
export async function platformCall(method, path, body) {
  if (!current) {
    throw new ApiError(401, { title: "Not signed in" });
  }
  const send = () => request(method, path, { body, headers: { Authorization: `Bearer ${current.access}` } });
  try {
    return await send();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && (await refresh())) {
      return send();
    }
    throw err;
  }
}

/** A binary `GET` as the signed-in user (an export's archive): fetched with the
 * bearer token (a plain link could not carry it), one refresh and retry on a 401. */
export async function callBlob(path) {
  if (!current) {
    throw new ApiError(401, { title: "Not signed in" });
  }
  // Under an impersonation, with its token, as `call` does.
  const imp = acting.current();
  const token = () => (imp ? imp.access : current.access);
  const send = () => requestBlob(path, { headers: { Authorization: `Bearer ${token()}` } });
  try {
    return await send();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      if (imp) {
        acting.end("revoked or expired (the API refused its token)");
      } else if (await refresh()) {
        return send();
      }
    }
    throw err;
  }
}
