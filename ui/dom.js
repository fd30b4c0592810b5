// Small DOM and formatting helpers. Data from the agent is only ever put into text nodes and
// attributes (never parsed as HTML), so nothing a bundle or a license file holds can run here.

const SVG_NS = "http://www.w3.org/2000/svg";

/** Builds an element: h("p", {class: "x", onclick: f}, "text", child, [more]). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAll(el, attrs);
  append(el, children);
  return el;
}

/** The same for SVG elements. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAll(el, attrs);
  append(el, children);
  return el;
}

function setAll(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Says `text` to screen readers (and leaves it in the page's live region). */
export function announce(text) {
  const a = document.getElementById("announcer");
  if (!a) return;
  a.textContent = "";
  // A new text node each time, so the same message twice is read twice.
  requestAnimationFrame(() => { a.textContent = text; });
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = -1;
  do { v /= 1024; i++; } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** "2026-11-20 14:05 UTC" style, in the browser's locale and time zone. */
export function time(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** "in 3 hours", "5 minutes ago". */
export function relative(iso, now = Date.now()) {
  if (!iso) return "";
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return "";
  const diff = (t - now) / 1000;
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const abs = Math.abs(diff);
  if (abs < 60) return rtf.format(Math.round(diff), "second");
  if (abs < 3600) return rtf.format(Math.round(diff / 60), "minute");
  if (abs < 86400) return rtf.format(Math.round(diff / 3600), "hour");
  return rtf.format(Math.round(diff / 86400), "day");
}

/** A `<time>` element showing a date and, in a title, how long ago or ahead. */
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "–");
  return h("time", { datetime: iso, title: relative(iso) }, time(iso));
}

export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/** A table in a scrollable, keyboard-reachable region. `cols`: [{label, cls}], `rows`: arrays of cells. */
export function table(caption, cols, rows, { emptyText = "Nothing yet." } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, emptyText);
  return h("div", { class: "table-wrap", role: "region", "aria-label": caption, tabindex: "0" },
    h("table", {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", class: c.cls }, c.label)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((cell, i) => h("td", { class: cols[i]?.cls }, cell)))))));
}

/** A button that runs `work` with the button marked busy and disabled meanwhile. */
export function action(label, work, { cls, busyLabel, attrs = {} } = {}) {
  const b = h("button", { type: "button", class: cls, ...attrs }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    b.setAttribute("aria-busy", "true");
    if (busyLabel) b.textContent = busyLabel;
    try {
      await work(b);
    } finally {
      b.disabled = false;
      b.removeAttribute("aria-busy");
      if (busyLabel) b.textContent = label;
    }
  });
  return b;
}

/** A line of feedback next to a form: `message(el, "Saved", "good")`. */
export function message(el, text, kind = "") {
  fill(el, text ? h("p", { class: `note ${kind}` }, text) : null);
  if (text) announce(text);
}

/** The result codes of the upload result files, in words. */
export const CODE_WORDS = {
  CTX_UPLOADER_SUCCESS: "Sent and acknowledged with a signed receipt",
  CTX_UPLOADER_ERROR_NETWORK_OPEN: "Could not reach the endpoint (name lookup, connection refused or reset)",
  CTX_UPLOADER_ERROR_TLS: "The secure connection failed (untrusted or wrong certificate)",
  CTX_UPLOADER_ERROR_PROXY_AUTH: "The proxy refused the credentials",
  CTX_UPLOADER_ERROR_PROXY: "The proxy could not be used or could not reach the endpoint",
  CTX_UPLOADER_ERROR_TIMEOUT: "No answer in time",
  CTX_UPLOADER_ERROR_HTTP_STATUS: "The endpoint answered with an error; it will be retried",
  CTX_UPLOADER_ERROR_AUTH: "Refused: credentials or registration",
  CTX_UPLOADER_ERROR_REJECTED: "Refused for good: the bundle was quarantined",
  CTX_UPLOADER_ERROR_RECEIPT: "Answered without a valid receipt; the bundle is kept",
  CTX_UPLOADER_ERROR_BUNDLE: "The bundle failed its own check and was quarantined",
  CTX_UPLOADER_ERROR_DISK: "A local file could not be read or written",
  CTX_UPLOADER_ERROR_CONFIG: "The upload configuration is unusable (CA file, key or proxy URL)",
};

export function codeWords(code) {
  return CODE_WORDS[code] || code;
}

/** The programs' names for people. */
export const TITLES = { telemetry: "License Telemetry", call_home: "Call Home", ceip: "CEIP", events: "Event data" };

export const STATE_WORDS = {
  ok: "On track",
  warning: "Upload soon",
  critical: "Upload now",
  overdue: "Overdue",
  exempt: "Exempt",
};

/** An upload cadence as the agent writes it (`1day`, `7days`, `12h`, `1day 12h`) in words. */
export function cadence(text) {
  const units = { day: "day", days: "day", h: "hour", m: "minute", s: "second", week: "week", weeks: "week", month: "month", months: "month" };
  return String(text).replace(/(\d+)\s*([a-z]+)/g, (all, n, u) => (units[u] ? plural(Number(n), units[u]) : all));
}
