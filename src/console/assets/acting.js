// The impersonation a platform admin acts under ("view as"): its `act` token,
// the tenant, and when it ends. Held in memory only (a reload drops it: the
// token is never stored). `end` is called at expiry (the banner's timer), on
// the API's 401 under it (revoked or expired), or by "End impersonation"; the
// listeners (app.js) then leave the tenant view and say why.

let imp = null;
const listeners = [];

/** The current impersonation `{access, id, tenantId, slug, actor, mode, expiresAt, role}`, or null. */
export function current() {
  return imp;
}

export function start(value) {
  imp = value;
}

/** Drops it without telling anyone (sign-out). */
export function stop() {
  imp = null;
}

/** Ends it and tells the listeners why. */
export function end(reason) {
  if (!imp) {
    return;
  }
  const ended = imp;
  imp = null;
  for (const listener of listeners) {
    listener(ended, reason);
  }
}

export function onEnd(listener) {
  listeners.push(listener);
}
