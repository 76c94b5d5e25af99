// The signed-in session. The access token lives in this module's memory only
// (never in storage a script could read later); the refresh token is the
// HttpOnly `__Secure-mrt` cookie on `/v1/auth`, which no script can read. The
// CSRF token that must accompany the cookie is kept in `sessionStorage` (this
// tab only) so a reload can resume the session: on its own it is worthless
// (it is a hash of the refresh token, and the cookie is `SameSite=Strict`).
// The access token is refreshed a minute before it expires.

import { ApiError, request, requestBlob } from "./api.js";

const CSRF_KEY = "meridian.console.csrf";
let current = null;
let timer = null;
let refreshing = null;

/** `{tenantId, userId, role}` of the signed-in user, or null. */
export function who() {
  return current && { tenantId: current.tenantId, userId: current.userId, role: current.role };
}

function adopt(s) {
  current = { access: s.access_token, tenantId: s.tenant_id, userId: s.user_id, role: s.role };
  sessionStorage.setItem(CSRF_KEY, s.csrf_token);
  clearTimeout(timer);
  const seconds = Math.max(5, (s.expires_in || 60) - 60);
  timer = setTimeout(() => refresh().catch(() => {}), seconds * 1000);
}

function forget() {
  current = null;
  clearTimeout(timer);
  sessionStorage.removeItem(CSRF_KEY);
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

/** Rotates the cookie into a new access token; false when the session is over. */
export function refresh() {
  const csrf = sessionStorage.getItem(CSRF_KEY);
  if (!csrf) {
    return Promise.resolve(false);
  }
  refreshing ??= request("POST", "/v1/auth/refresh", { body: {}, headers: { "X-Meridian-CSRF": csrf } })
    .then((s) => { adopt(s); return true; })
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
      await request("POST", "/v1/auth/logout", { body: {}, headers: { "X-Meridian-CSRF": csrf } });
    }
  } finally {
    forget();
  }
}

/** An API call as the signed-in user; one refresh and retry on a 401. */
export async function call(method, path, body) {
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
  const send = () => requestBlob(path, { headers: { Authorization: `Bearer ${current.access}` } });
  try {
    return await send();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && (await refresh())) {
      return send();
    }
    throw err;
  }
}
