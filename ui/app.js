// The dashboard's frame: the page router (#/overview, #/preview/<bundle>, …), the agent's
// status shared by the pages, and live updates from the API's event stream.

import { api, events, onSignedOut, session, signOut } from "./api.js";
import { fill, h, announce } from "./dom.js";
import * as overview from "./overview.js";
import * as programs from "./programs.js";
import * as preview from "./preview.js";
import * as history from "./history.js";
import * as licenses from "./licenses.js";
import * as settings from "./settings.js";

const PAGES = { overview, programs, preview, history, licenses, settings };

const main = document.getElementById("main");
const banner = document.getElementById("banner");
const live = document.getElementById("live");
const agentLine = document.getElementById("agent-line");

/** What the pages share: the latest status and a way to ask for a fresh one. */
const ctx = {
  status: null,
  async refresh() {
    ctx.status = await api("/api/v1/status");
    paintHeader();
    return ctx.status;
  },
  /** Repaints the current page from `status` (after a change it made itself). */
  repaint() {
    current?.view?.update?.(ctx.status, "state", {});
  },
  navigate(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
};

let current = null; // { name, view }
let closeEvents = null;

function paintHeader() {
  const st = ctx.status;
  if (!st) return;
  const who = st.agent.running ? "agent running" : "no agent holds the data directory";
  agentLine.textContent = `v${st.agent_version} · ${who} · install ${st.install_id.slice(0, 8)}`;
}

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const name = PAGES[parts[0]] ? parts[0] : "overview";
  return { name, arg: parts.slice(1).map(decodeURIComponent).join("/") };
}

async function route() {
  const { name, arg } = parseHash();
  current?.view?.dispose?.();
  for (const a of document.querySelectorAll(".tabs a")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const page = PAGES[name];
  document.title = `${page.title} · callhome dashboard`;
  fill(main, h("p", { class: "muted" }, "Loading…"));
  main.setAttribute("aria-busy", "true");
  delete main.dataset.ready;
  const token = {};
  current = { name, token, view: null };
  try {
    if (!ctx.status) await ctx.refresh();
    const view = await page.render(main, ctx, arg);
    if (current.token !== token) {
      view?.dispose?.();
      return;
    }
    current.view = view;
  } catch (e) {
    if (current.token !== token) return;
    fill(main, h("h1", {}, page.title), h("p", { class: "note bad" }, `Could not load this page: ${e.message}`));
  }
  main.removeAttribute("aria-busy");
  // For scripts and tests: which page is fully drawn.
  main.dataset.ready = arg ? `${name}/${arg}` : name;
  main.focus({ preventScroll: true });
}

let pending = null;
/** Many events in a burst make one refresh. */
function onEvent(kind, data) {
  if (kind === "upload") {
    const ok = data.code === "CTX_UPLOADER_SUCCESS";
    announce(`${data.program}: ${ok ? "upload acknowledged" : `upload failed: ${data.message || data.code}`}`);
  }
  clearTimeout(pending);
  pending = setTimeout(async () => {
    try {
      await ctx.refresh();
      current?.view?.update?.(ctx.status, kind, data);
    } catch {
      /* a 401 shows the banner; anything else waits for the next event */
    }
  }, 150);
}

function setLive(on) {
  live.className = `live ${on ? "on" : "off"}`;
  live.textContent = on ? "Live updates: on" : "Live updates: reconnecting…";
}

onSignedOut(() => {
  closeEvents?.();
  closeEvents = null;
  live.className = "live off";
  live.textContent = "Signed out";
  banner.hidden = false;
  fill(banner,
    h("strong", {}, "Your dashboard session has ended"),
    " (it expired, or the agent restarted). Run ",
    h("code", {}, "callhome dashboard"),
    " on this machine to sign in again.");
});

if (!session()) {
  // This tab never signed in: the way to sign in, not a page of errors.
  location.replace("/ui/signin.html");
} else {
  document.getElementById("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  closeEvents = events(onEvent, setLive);
  route();
}
