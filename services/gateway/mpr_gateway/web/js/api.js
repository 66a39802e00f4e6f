// The gateway's REST API with the key from local storage (sent as X-API-Key). A 401 clears
// nothing by itself: it fires "mpr:unauthorized" so the page asks for a key again.

const KEY_STORAGE = "mpr.apiKey";

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  localStorage.setItem(KEY_STORAGE, key.trim());
}

/** The API's error ({"error": {"code", "message", "details"}}) or a network failure. */
export class ApiError extends Error {
  constructor(status, code, message, details = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy's page): keep the status line
  }
  const error = body && body.error;
  if (error && typeof error.message === "string") {
    return new ApiError(response.status, error.code, error.message, error.details);
  }
  return new ApiError(response.status, "http_error", `${response.status} ${response.statusText}`);
}

/** fetch() an /api path; JSON in and out; ApiError on any non-2xx. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const key = apiKey();
  const headers = { "X-API-Key": key, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      credentials: "omit",
    });
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, "network", `the gateway did not answer (${exc.message})`);
  }
  if (response.status === 401) {
    const error = await errorOf(response);
    // A late answer to a request sent with a key since replaced asks nothing.
    if (key === apiKey()) window.dispatchEvent(new CustomEvent("mpr:unauthorized", { detail: error.message }));
    throw error;
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  return response.json();
}

/** "?a=1&b=2" from the defined values of ``params``. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

let configPromise = null;

/** GET /api/config once per key: the SSE URL and the upload limits. */
export function config() {
  if (!configPromise) {
    configPromise = api("/api/config").catch((exc) => {
      configPromise = null;
      throw exc;
    });
  }
  return configPromise;
}

export function forgetConfig() {
  configPromise = null;
}
