// The dashboard's only way to the agent: its REST API, signed in by the session this tab got at
// sign-in (kept in sessionStorage, sent as X-Callhome-Session: never a cookie, which the browser
// would hand to every other local port too). Errors come back as the API's problem documents.

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

const SESSION_KEY = "callhome.session";

/** This tab's session, if it signed in. */
export function session() {
  return sessionStorage.getItem(SESSION_KEY);
}

function headers(extra = {}) {
  const h = { ...extra };
  const s = session();
  if (s) h["X-Callhome-Session"] = s;
  return h;
}

/** Ends the session at the agent and in this tab, then shows the sign-in page. */
export async function signOut() {
  try {
    await fetch("/logout", { method: "POST", credentials: "omit", headers: headers({ "Content-Type": "application/json" }), body: "{}" });
  } finally {
    sessionStorage.removeItem(SESSION_KEY);
    location.replace("/ui/signin.html");
  }
}

/** One request: `api("/api/v1/status")`, `api(path, {method: "PUT", body: {...}})`. */
export async function api(path, { method = "GET", body, raw = false } = {}) {
  const init = { method, credentials: "omit", headers: headers({ Accept: "application/json" }) };
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

/** Saves what `path` answers as the file `name` (fetched with the session, then handed to the
 * browser's downloads). */
export async function download(path, name) {
  const resp = await api(path, { raw: true });
  const url = URL.createObjectURL(await resp.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** The agent's event stream (Server-Sent Events read with fetch, since EventSource cannot send
 * the session header). `onEvent(kind, data)`; `onState(connected)`. Returns a closer. */
export function events(onEvent, onState) {
  let closed = false;
  let ctrl = null;
  let wait = 500;
  const dispatch = (block) => {
    let kind = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) kind = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (!data.length || !["state", "upload", "license_event"].includes(kind)) return;
    let parsed = {};
    try {
      parsed = JSON.parse(data.join("\n"));
    } catch {
      parsed = {};
    }
    onEvent(kind, parsed);
  };
  const run = async () => {
    while (!closed) {
      ctrl = new AbortController();
      try {
        const resp = await fetch("/api/v1/events", { credentials: "omit", headers: headers({ Accept: "text/event-stream" }), signal: ctrl.signal });
        if (resp.status === 401) {
          listeners.signedOut.forEach((f) => f());
          return;
        }
        if (!resp.ok) throw new Error(String(resp.status));
        onState(true);
        wait = 500;
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, "\n");
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            dispatch(buf.slice(0, i));
            buf = buf.slice(i + 2);
          }
        }
      } catch {
        /* reconnect below */
      }
      if (closed) return;
      onState(false);
      // Reconnecting to the agent after it went away: a backoff, not a synchronisation.
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 10000);
    }
  };
  run();
  return () => {
    closed = true;
    ctrl?.abort();
  };
}

/** Encodes one path segment (a bundle or file name; `/` becomes %2F). */
export const seg = encodeURIComponent;
