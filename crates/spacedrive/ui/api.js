// The daemon's HTTP API: one POST per method (`/api/v1/{method}`, the body is its params), the
// answer `{"ok": …}` or `{"error": {code, message}}`, and the event stream as server-sent events.
// The session cookie (set by /login) authenticates every call.

export class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export async function call(method, params) {
  const init = { method: "POST", headers: { "content-type": "application/json" }, credentials: "same-origin" };
  if (params !== undefined) init.body = JSON.stringify(params);
  let resp;
  try {
    resp = await fetch(`/api/v1/${method}`, init);
  } catch (e) {
    throw new ApiError("unreachable", `the daemon does not answer (${e.message}); is it running?`);
  }
  if (resp.status === 401) {
    location.href = "/login";
    throw new ApiError("forbidden", "logged out");
  }
  let body;
  try {
    body = await resp.json();
  } catch (e) {
    throw new ApiError("internal", `unreadable answer (${resp.status})`);
  }
  if (body.error) throw new ApiError(body.error.code, body.error.message);
  return body.ok;
}

export async function session() {
  const resp = await fetch("/api/v1/session", { credentials: "same-origin" });
  return resp.ok ? resp.json() : null;
}

// Calls `onLine` with every line of the event stream (`{event}`, `{heartbeat}`, `{error}`);
// the browser reconnects by itself after a drop.
export function events(onLine, onState) {
  const es = new EventSource("/api/v1/events");
  es.onmessage = (m) => {
    try { onLine(JSON.parse(m.data)); } catch (e) { console.error(e); }
  };
  es.onopen = () => onState && onState(true);
  es.onerror = () => onState && onState(false);
  return es;
}
