// The console's one way to the API: same-origin `fetch` of `/v1/...` paths,
// JSON in and out, RFC 9457 problems turned into `ApiError` (message, code,
// request id). Redirects are refused (`redirect: "error"`): the API redirects
// only to another region's origin, and the console never follows a request
// off this node (the tenant's region is reached by navigating there instead).

export class ApiError extends Error {
  constructor(status, problem, requestId) {
    const title = problem.title || `HTTP ${status}`;
    super(problem.detail ? `${title}: ${problem.detail}` : title);
    this.status = status;
    this.code = problem.code || null;
    this.requestId = problem.request_id || requestId || null;
  }
}

/** `method path` with an optional JSON `body` and extra `headers`. */
export async function request(method, path, { body, headers = {} } = {}) {
  if (!path.startsWith("/v1/")) {
    throw new Error(`not an API path: ${path}`);
  }
  const init = { method, headers: { Accept: "application/json", ...headers }, redirect: "error", credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    // A network failure, or a redirect to another region's origin.
    throw new ApiError(0, {
      title: "The request did not complete",
      detail: "the node did not answer, or sent the console to another region's address (open the console there)",
    });
  }
  const requestId = res.headers.get("X-Request-Id");
  if (res.status === 204) {
    return null;
  }
  const type = res.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await res.json().catch(() => ({})) : {};
  if (!res.ok) {
    throw new ApiError(res.status, data, requestId);
  }
  return data;
}

/** `GET path` as a Blob (an export's archive), with the same checks as `request`. */
export async function requestBlob(path, { headers = {} } = {}) {
  if (!path.startsWith("/v1/")) {
    throw new Error(`not an API path: ${path}`);
  }
  let res;
  try {
    res = await fetch(path, { headers, redirect: "error", credentials: "same-origin" });
  } catch (err) {
    throw new ApiError(0, { title: "The download did not complete" });
  }
  if (!res.ok) {
    const data = (res.headers.get("Content-Type") || "").includes("json") ? await res.json().catch(() => ({})) : {};
    throw new ApiError(res.status, data, res.headers.get("X-Request-Id"));
  }
  return res.blob();
}
