// The dashboard's only way to the agent: its REST API, signed in by the session cookie (sent
// by the browser, never seen by this code). Errors come back as the API's problem documents.

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `the agent answered ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

const listeners = { signedOut: [] };

/** Calls `fn` when the agent stops accepting this browser's session (401). */
export function onSignedOut(fn) {
  listeners.signedOut.push(fn);
}

/** One request: `api("/api/v1/status")`, `api(path, {method: "PUT", body: {...}})`. */
export async function api(path, { method = "GET", body, raw = false } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `the agent cannot be reached (${e.message}); is it still running?`);
  }
  if (resp.status === 401) listeners.signedOut.forEach((f) => f());
  if (!resp.ok) {
    let detail = "";
    try {
      detail = (await resp.json()).detail || "";
    } catch {
      detail = "";
    }
    throw new ApiError(resp.status, detail || `${method} ${path} answered ${resp.status}`);
  }
  if (raw) return resp;
  const type = resp.headers.get("content-type") || "";
  return type.includes("json") ? resp.json() : resp.text();
}

/** Starts a job (`POST`) and follows it to its end; returns the finished job document. */
export async function runJob(path, body = {}) {
  let job = await api(path, { method: "POST", body });
  let wait = 100;
  while (job.state === "running") {
    // Polling the agent's job document: the job's end has no event of its own.
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 1000);
    job = await api(job.href);
  }
  return job;
}

/** The agent's event stream. `onEvent(kind, data)`; `onState(connected)`. Returns a closer. */
export function events(onEvent, onState) {
  const es = new EventSource("/api/v1/events");
  es.onopen = () => onState(true);
  es.onerror = () => onState(es.readyState === EventSource.OPEN);
  for (const kind of ["state", "upload", "license_event"]) {
    es.addEventListener(kind, (e) => {
      let data = {};
      try {
        data = JSON.parse(e.data);
      } catch {
        data = {};
      }
      onEvent(kind, data);
    });
  }
  return () => es.close();
}

/** Encodes one path segment (a bundle or file name; `/` becomes %2F). */
export const seg = encodeURIComponent;
