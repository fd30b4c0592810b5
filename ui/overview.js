// Overview: the compliance clock, the last result per upload type, what runs next, pending
// bundles, open alerts, and "Upload now" / "Collect now". Repainted on every live event.

import { api, runJob } from "./api.js";
import { h, s, fill, when, relative, bytes, plural, action, message, codeWords, cadence, STATE_WORDS } from "./dom.js";

export const title = "Overview";

const TYPE_WORDS = {
  compliance: "License telemetry (compliance)",
  usage: "Call Home and CEIP (usage)",
  events: "Event data",
};

/** The countdown: a ring whose filled part is the days used of the maximum. */
function clockRing(c) {
  const r = 52;
  const len = 2 * Math.PI * r;
  const used = Math.min(1, Math.max(0, c.days_since_last_upload / c.max_days));
  const label = `${c.days_since_last_upload} of ${c.max_days} days used`;
  return s("svg", { viewBox: "0 0 128 128", role: "img", "aria-label": label },
    s("title", {}, label),
    s("circle", { class: "track", cx: 64, cy: 64, r, fill: "none", "stroke-width": 12 }),
    used === 0 ? null : s("circle", {
      class: `used state-${c.state}`, cx: 64, cy: 64, r, fill: "none", "stroke-width": 12,
      "stroke-dasharray": `${(used * len).toFixed(2)} ${len.toFixed(2)}`, transform: "rotate(-90 64 64)",
    }),
    s("text", { class: "big", x: 64, y: 66, "text-anchor": "middle" }, String(c.days_since_last_upload)),
    s("text", { class: "small", x: 64, y: 82, "text-anchor": "middle" }, `of ${c.max_days} days`));
}

function compliance(st) {
  const c = st.compliance;
  const telemetry = st.programs.find((p) => p.name === "telemetry");
  const left = c.days_remaining;
  const ex = c.exemption;
  const leftText = ex
    ? ["Exempt ", h("span", { class: "until" }, `until ${ex.until}`)]
    : left >= 0 ? `${plural(left, "day")} left` : `${-left} days overdue`;
  return [
    h("h2", {}, "Compliance clock"),
    h("div", { class: "clock" },
      clockRing(c),
      h("div", { class: "stack" },
        h("p", { class: "days-left", id: "days-left" }, leftText),
        h("p", {}, h("span", { class: `badge state-${c.state}`, id: "compliance-state" }, STATE_WORDS[c.state] || c.state)),
        h("p", { class: "muted" },
          c.last_success
            ? ["Last license-telemetry upload acknowledged ", when(c.last_success), ` (${relative(c.last_success)}).`]
            : "No license-telemetry upload acknowledged yet: counting from the installation.",
          " Deadline: ", when(c.deadline), "."))),
    ex
      ? h("p", { class: "note", id: "exemption" }, `The vendor exempted this installation from the reporting rule through ${ex.until} (UTC): ${ex.reason}. `,
        "Nothing is overdue until then; uploads go on as configured.")
      : null,
    telemetry?.mode === "manual"
      ? h("p", { class: "note" }, "License telemetry is on manual reporting: export the pending bundles and import the receipt before the deadline (",
        h("a", { href: "#/settings" }, "Settings"), ").")
      : null,
  ];
}

function lastResults(st) {
  const entries = Object.entries(st.last_result);
  return [
    h("h2", {}, "Last upload results"),
    h("ul", { class: "plain", id: "last-results" }, entries.map(([type, r]) =>
      h("li", {},
        h("strong", {}, TYPE_WORDS[type] || type), h("br"),
        r
          ? [h("span", { class: `badge ${r.code === "CTX_UPLOADER_SUCCESS" ? "state-ok" : "state-critical"}` },
            r.code === "CTX_UPLOADER_SUCCESS" ? "Succeeded" : "Failed"), " ",
          codeWords(r.code), r.message ? `: ${r.message}` : "", " · ", when(r.at)]
          : h("span", { class: "muted" }, "No upload yet.")))),
  ];
}

function nextRuns(st) {
  return [
    h("h2", {}, "Next runs"),
    h("dl", { class: "facts" },
      h("dt", {}, "Next upload"),
      h("dd", { id: "next-upload" }, st.next_upload ? [when(st.next_upload), ` (${relative(st.next_upload)})`] : "not scheduled (the agent is not running)"),
      st.programs.filter((p) => p.enabled).map((p) => [
        h("dt", {}, p.title),
        h("dd", {}, p.name === "telemetry" && p.mode === "manual" ? "manual reporting" : `uploads every ${cadence(p.upload_interval)}`),
      ])),
  ];
}

function pending(st) {
  const sp = st.spool;
  const by = Object.entries(sp.by_program).filter(([, n]) => n > 0);
  return [
    h("h2", {}, "Pending bundles"),
    h("p", {}, h("strong", { id: "pending-count" }, plural(sp.pending, "bundle")), ` waiting, ${bytes(sp.pending_bytes)} of the ${bytes(sp.max_bytes)} spool.`),
    by.length ? h("ul", {}, by.map(([p, n]) => h("li", {}, `${st.programs.find((x) => x.name === p)?.title || p}: ${n}`))) : null,
    sp.quarantined ? h("p", { class: "note bad" }, `${plural(sp.quarantined, "bundle")} quarantined (refused for good or damaged).`) : null,
    h("p", {}, h("a", { href: "#/preview" }, "Read exactly what will be sent")),
  ];
}

/** The open alerts as the agent keeps them, each with Acknowledge (or Undo once acknowledged). */
function alerts(st, done) {
  const msg = h("div", { class: "message", id: "alerts-message" });
  const act = (a, method, said) => async () => {
    try {
      await api(`/api/v1/alerts/${encodeURIComponent(a.id)}/ack`, { method, body: method === "POST" ? {} : undefined });
      await done();
      message(document.getElementById("alerts-message"), said, "good");
    } catch (err) {
      message(msg, err.message, "bad");
    }
  };
  const item = (a) => h("li", { "data-alert": a.id, class: a.acknowledged ? "acknowledged" : null },
    h("span", { class: `badge state-${a.severity}` }, a.severity === "critical" ? "Act" : "Note"), " ",
    h("strong", {}, a.title), a.text && a.text !== a.title ? ` — ${a.text}` : "",
    a.acknowledged
      ? h("span", { class: "muted" }, ` Acknowledged${a.acked_until ? ` until ${when(a.acked_until)}` : " until it clears"}.`)
      : null,
    " ",
    a.acknowledged
      ? action("Undo", act(a, "DELETE", `“${a.title}” is no longer acknowledged.`), { cls: "secondary small", attrs: { id: `unack-${a.id}`, "aria-label": `Undo the acknowledgement of: ${a.title}` } })
      : action("Acknowledge", act(a, "POST", `“${a.title}” acknowledged: callhome check leaves it out until it clears or gets worse.`), { cls: "secondary small", attrs: { id: `ack-${a.id}`, "aria-label": `Acknowledge: ${a.title}` } }));
  const list = st.alerts || [];
  const open = list.filter((a) => !a.acknowledged).length;
  return [
    h("h2", {}, "Open alerts"),
    list.length
      ? [h("p", { class: "muted", id: "alerts-count" }, `${open} open, ${list.length - open} acknowledged.`),
        h("ul", { class: "plain", id: "alerts" }, list.map(item))]
      : h("p", { class: "muted", id: "alerts" }, "No open alerts."),
    st.spool.over_quota_bytes > 0 ? h("p", { class: "note" }, `The spool is ${bytes(st.spool.over_quota_bytes)} over its quota.`) : null,
    msg,
  ];
}

function jobSummary(job) {
  if (job.result?.error) return job.result.error;
  if (job.kind === "upload") {
    const parts = (job.result?.programs || []).map((p) =>
      p.code ? `${p.program}: ${codeWords(p.code)}` : p.sent.length ? `${p.program}: ${p.sent.length} sent` : `${p.program}: ${p.skipped || "nothing to send"}`);
    return `Upload ${job.ok ? "done" : "did not fully succeed"}. ${parts.join("; ")}`;
  }
  const made = (job.result || []).filter((c) => c.bundle).map((c) => c.program);
  return made.length ? `Collected: ${made.join(", ")}.` : "Nothing collected (no program due or enabled).";
}

export async function render(main, ctx) {
  const cards = {
    compliance: h("section", { class: "card", "aria-labelledby": "h-clock" }),
    results: h("section", { class: "card" }),
    next: h("section", { class: "card" }),
    pending: h("section", { class: "card" }),
    alerts: h("section", { class: "card" }),
  };
  const feedback = h("div", { class: "message", id: "job-message" });
  const run = (path, busy) => async () => {
    message(feedback, busy);
    try {
      const job = await runJob(path, {});
      message(feedback, jobSummary(job), job.ok ? "good" : "bad");
      await ctx.refresh();
      paint(ctx.status);
    } catch (e) {
      message(feedback, e.message, "bad");
    }
  };
  fill(main,
    h("div", { class: "row spread" },
      h("h1", {}, "Overview"),
      h("div", { class: "row" },
        action("Collect now", run("/api/v1/collect", "Collecting…"), { cls: "secondary", busyLabel: "Collecting…", attrs: { id: "collect-now" } }),
        action("Upload now", run("/api/v1/upload", "Uploading…"), { busyLabel: "Uploading…", attrs: { id: "upload-now" } }))),
    feedback,
    h("div", { class: "grid" }, Object.values(cards)));
  const paint = (st) => {
    fill(cards.compliance, compliance(st));
    cards.compliance.firstChild.id = "h-clock";
    fill(cards.results, lastResults(st));
    fill(cards.next, nextRuns(st));
    fill(cards.pending, pending(st));
    fill(cards.alerts, alerts(st, async () => paint(await ctx.refresh())));
  };
  paint(ctx.status);
  // The snapshot is at most 30 s old; read a fresh one once the page is up.
  ctx.refresh().then(paint).catch(() => {});
  return { update: (st) => paint(st) };
}
