// The console's only way to the server: the same /v1 API the CLI uses, with
// the access key as a bearer token. The key lives in sessionStorage, so it
// goes when the tab closes, and no cookie is ever set (nothing to forge).

const KEY_NAME = "mayfly.key";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function accessKey() {
  return sessionStorage.getItem(KEY_NAME) || "";
}

export function setAccessKey(key) {
  if (key) sessionStorage.setItem(KEY_NAME, key);
  else sessionStorage.removeItem(KEY_NAME);
}

function headers(extra) {
  const h = new Headers(extra || {});
  const key = accessKey();
  if (key) h.set("Authorization", "Bearer " + key);
  return h;
}

// Listeners told when the server refuses the key (401/403 on whoami or a
// 401 anywhere): the app sends the user back to the login form.
const unauthorized = [];
export function onUnauthorized(fn) {
  unauthorized.push(fn);
}

async function failure(resp) {
  let code = "http_" + resp.status;
  let message = resp.status + " " + resp.statusText;
  try {
    const body = await resp.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch (_) {
    /* not a JSON error document: the status line says enough */
  }
  if (resp.status === 401) unauthorized.forEach((fn) => fn(message));
  return new ApiError(resp.status, code, message);
}

// A raw request: the Response, or an ApiError thrown for a status >= 400.
export async function request(method, path, { body, query, extra, signal } = {}) {
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
    }
    const s = q.toString();
    if (s) url += (url.includes("?") ? "&" : "?") + s;
  }
  const init = { method, headers: headers(extra), signal, cache: "no-store" };
  if (body !== undefined) init.body = body;
  const resp = await fetch(url, init);
  if (resp.status >= 400) throw await failure(resp);
  return resp;
}

export async function getJSON(path, query) {
  const resp = await request("GET", path, { query });
  return resp.json();
}

export async function sendJSON(method, path, value) {
  const resp = await request(method, path, {
    body: value === undefined ? undefined : JSON.stringify(value),
    extra: { "Content-Type": "application/json" },
  });
  if (resp.status === 204) return null;
  return resp.json();
}

export const enc = encodeURIComponent;

// The aggregated series the charts read (never the records themselves).
export function series(fn, metric, fromMs, toMs, stepS) {
  return getJSON(`/v1/functions/${enc(fn)}/series`, {
    metric,
    from: fromMs,
    to: toMs,
    step: stepS,
  });
}

// Reads an NDJSON stream (the logs' follow mode), calling onLine with each
// parsed line until the stream ends or signal aborts.
export async function streamLines(path, query, onLine, signal) {
  const resp = await request("GET", path, { query, signal });
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      if (signal && signal.aborted) return;
      throw e;
    }
    if (chunk.done) break;
    pending += decoder.decode(chunk.value, { stream: true });
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (line) onLine(JSON.parse(line));
    }
  }
  if (pending.trim()) onLine(JSON.parse(pending));
}

export async function getLines(path, query) {
  const resp = await request("GET", path, { query });
  const text = await resp.text();
  return text
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}
