// Settings: the proxy and the endpoint token (write-only: sent, never shown back; the agent keeps
// them in the OS keyring), notifications, manual reporting with export and receipt import, and a
// connection test.

import { api, download, runJob } from "./api.js";
import { h, fill, message, action, plural, when } from "./dom.js";

export const title = "Settings";

const notHere = (what) =>
  `This agent does not offer ${what} through its API (it answered 404); set it in the configuration file instead.`;

const SOURCE_WORDS = {
  keyring: "the system keyring",
  environment: "an environment variable",
  "systemd-credential": "a systemd credential",
};

/** What the agent uses now, in words (never a secret: the API does not give them). */
function accessWords(p) {
  const where = p.origin === "settings" ? "chosen here or with `callhome proxy set`" : "from the configuration file";
  const proxy = p.url ? `Uploads go through ${p.url}${p.username ? ` as ${p.username}` : ""} (${where}).` : "Uploads connect directly (no proxy).";
  const pw = p.url ? (p.password_set ? ` Its password comes from ${SOURCE_WORDS[p.password_source] || p.password_source}.` : " No proxy password is set.") : "";
  return proxy + pw;
}

function proxySection() {
  const msg = h("div", { class: "message", id: "proxy-message" });
  const state = h("p", { id: "proxy-state", class: "muted" }, "Reading the proxy settings…");
  const url = h("input", { type: "url", id: "proxy-url", name: "url", autocomplete: "off", placeholder: "http://proxy.example:3128", "aria-describedby": "proxy-url-hint" });
  const user = h("input", { type: "text", id: "proxy-user", name: "username", autocomplete: "off" });
  const pass = h("input", { type: "password", id: "proxy-password", name: "password", autocomplete: "new-password", "aria-describedby": "proxy-password-hint" });
  const passHint = h("span", { class: "hint", id: "proxy-password-hint" }, "Write-only: it goes to the system keyring and is never shown again. Leave empty to keep the saved one.");
  const show = (p) => {
    url.value = p.url || "";
    user.value = p.username || "";
    pass.value = "";
    state.textContent = accessWords(p);
    passHint.textContent = p.password_set
      ? "A password is set (write-only: never shown). Type a new one to replace it, or leave empty to keep it."
      : "Write-only: it goes to the system keyring and is never shown again.";
  };
  const failed = (err) => message(msg, err.status === 404 ? notHere("proxy settings") : err.message, "bad");
  const forget = h("button", { type: "button", class: "secondary", id: "proxy-forget", onclick: async () => {
    try {
      show(await api("/api/v1/proxy", { method: "DELETE" }));
      message(msg, "The proxy chosen here is forgotten (its password removed from the keyring); the configuration file's applies again.", "good");
    } catch (err) {
      failed(err);
    }
  } }, "Forget it");
  const form = h("form", { id: "proxy-form", novalidate: true },
    state,
    h("div", { class: "field" }, h("label", { for: "proxy-url" }, "Proxy URL"), url,
      h("span", { class: "hint", id: "proxy-url-hint" }, "Such as http://proxy.example:3128, without credentials in it.")),
    h("div", { class: "field" }, h("label", { for: "proxy-user" }, "User name"), user),
    h("div", { class: "field" }, h("label", { for: "proxy-password" }, "Password"), pass, passHint),
    h("div", { class: "row" }, h("button", { type: "submit", id: "proxy-save" }, "Save proxy"), forget),
    msg);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!url.value.trim()) {
      message(msg, "Type the proxy's URL, or use \u201cForget it\u201d to connect as the configuration file says.", "bad");
      url.focus();
      return;
    }
    const body = { url: url.value.trim() };
    if (user.value.trim()) body.username = user.value.trim();
    if (pass.value) body.password = pass.value;
    try {
      show(await api("/api/v1/proxy", { method: "PUT", body }));
      message(msg, "Proxy saved. The next upload uses it.", "good");
    } catch (err) {
      failed(err);
    }
  });
  const load = api("/api/v1/proxy").then(show).catch(failed);
  return [h("section", { class: "card", "aria-labelledby": "h-proxy" },
    h("h2", { id: "h-proxy" }, "Proxy"), form), load];
}

function registrationSection() {
  const msg = h("div", { class: "message", id: "registration-message" });
  const state = h("p", { id: "registration-state", class: "muted" });
  const token = h("input", { type: "password", id: "registration-token", autocomplete: "off", "aria-describedby": "registration-hint" });
  const show = (p) => {
    token.value = "";
    state.textContent = p.token_set
      ? `Registered: uploads present the endpoint token from ${SOURCE_WORDS[p.token_source] || p.token_source}.`
      : "Not registered: uploads carry no endpoint token.";
  };
  const failed = (err) => message(msg, err.status === 404 ? notHere("registration") : err.message, "bad");
  const form = h("form", { id: "registration-form", novalidate: true },
    state,
    h("div", { class: "field" }, h("label", { for: "registration-token" }, "Endpoint token"), token,
      h("span", { class: "hint", id: "registration-hint" }, "From the vendor. Write-only: kept in the system keyring, never shown again.")),
    h("div", { class: "row" },
      h("button", { type: "submit", id: "registration-save" }, "Register"),
      h("button", { type: "button", class: "secondary", id: "registration-remove", onclick: async () => {
        try {
          show(await api("/api/v1/registration", { method: "DELETE" }));
          message(msg, "The endpoint token is removed.", "good");
        } catch (err) {
          failed(err);
        }
      } }, "Remove the token")),
    msg);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!token.value.trim()) {
      message(msg, "Paste the endpoint token the vendor gave you first.", "bad");
      token.focus();
      return;
    }
    try {
      show(await api("/api/v1/registration", { method: "PUT", body: { token: token.value.trim() } }));
      message(msg, "Registered: uploads present the token from now on.", "good");
    } catch (err) {
      failed(err);
    }
  });
  const load = api("/api/v1/proxy").then(show).catch(() => {});
  return [h("section", { class: "card", "aria-labelledby": "h-registration" },
    h("h2", { id: "h-registration" }, "Registration"), form), load];
}

/** The alert channels' state: where each delivers, its last delivery and last error. */
function channelList(channels) {
  if (!channels.length) {
    return h("p", { class: "muted", id: "alert-channels" }, "No alert channel is configured ([alerts.email], [alerts.webhook] or [alerts.journal] in the configuration file).");
  }
  return h("ul", { class: "plain", id: "alert-channels" }, channels.map((c) => h("li", { "data-channel": c.name },
    h("strong", {}, c.name), ` to ${c.target}: `,
    c.last_delivery ? ["last delivered ", when(c.last_delivery)] : "nothing delivered yet",
    ` (${plural(c.delivered, "alert")} delivered)`,
    c.last_error ? h("span", { class: "note bad" }, [" Last error", c.last_error_at ? [" ", when(c.last_error_at)] : null, `: ${c.last_error}`]) : null)));
}

function notificationsSection() {
  const msg = h("div", { class: "message", id: "notifications-message" });
  const box = h("input", { type: "checkbox", role: "switch", id: "notifications", disabled: true });
  const quiet = h("span", { id: "quiet-period" });
  const channels = h("div", {});
  const show = (n) => {
    box.checked = !!n.enabled;
    box.disabled = false;
    fill(quiet, n.quiet_period);
    fill(channels, channelList(n.channels));
  };
  box.addEventListener("change", async () => {
    try {
      show(await api("/api/v1/notifications", { method: "PUT", body: { enabled: box.checked } }));
      message(msg, `Desktop notifications ${box.checked ? "on" : "off"}.`, "good");
    } catch (err) {
      box.checked = !box.checked;
      message(msg, err.message, "bad");
    }
  });
  const test = action("Send a test alert", async () => {
    try {
      const results = await api("/api/v1/alerts/test", { method: "POST", body: {} });
      const bad = results.filter((r) => !r.delivered);
      message(msg, bad.length
        ? `Not delivered: ${bad.map((r) => `${r.channel} (${r.error})`).join("; ")}`
        : `Test alert delivered on ${results.map((r) => r.channel).join(", ")}.`, bad.length ? "bad" : "good");
      show(await api("/api/v1/notifications"));
    } catch (err) {
      message(msg, err.message, "bad");
    }
  }, { cls: "secondary", busyLabel: "Sending…", attrs: { id: "test-alert" } });
  const load = api("/api/v1/notifications").then(show).catch((err) => message(msg, err.message, "bad"));
  return [h("section", { class: "card stack", "aria-labelledby": "h-notifications" },
    h("h2", { id: "h-notifications" }, "Notifications"),
    h("p", { class: "muted" }, "Desktop notifications for failed uploads, the approaching compliance limit, expiring licenses and grace periods. The alert channels below get every alert either way; the same alert is not repeated within ", quiet, "."),
    h("label", { class: "choice", for: "notifications" }, box, "Show desktop notifications"),
    h("h3", {}, "Alert channels"),
    channels,
    h("div", { class: "row" }, test),
    msg), load];
}

function manualSection(ctx) {
  const msg = h("div", { class: "message", id: "manual-message" });
  const telemetry = ctx.status.programs.find((p) => p.name === "telemetry");
  const box = h("input", { type: "checkbox", role: "switch", id: "manual-reporting", checked: telemetry?.mode === "manual" });
  box.addEventListener("change", async () => {
    try {
      await api("/api/v1/programs/telemetry", { method: "PUT", body: { mode: box.checked ? "manual" : "automatic" } });
      message(msg, box.checked ? "Manual reporting on: license telemetry is no longer uploaded; export it below." : "Automatic uploads again.", "good");
      await ctx.refresh();
    } catch (err) {
      box.checked = !box.checked;
      message(msg, err.message, "bad");
    }
  });
  const exportLink = h("div", { id: "export-result" });
  const maxSize = h("input", { type: "number", id: "export-max-size", min: "1", step: "any", inputmode: "decimal", placeholder: "one file" });
  const exportBtn = action("Export pending bundles", async () => {
    const mb = maxSize.value.trim() === "" ? null : Number(maxSize.value);
    if (mb !== null && !(mb > 0)) {
      message(msg, "The largest part must be more than 0 MB, or empty for one file.", "bad");
      maxSize.focus();
      return;
    }
    message(msg, "Exporting…");
    try {
      const job = await runJob("/api/v1/export", mb === null ? {} : { max_size: Math.floor(mb * 1e6) });
      if (!job.ok) throw new Error(job.result?.error || "the export failed");
      const r = job.result;
      const parts = r.parts || [r];
      const total = parts.reduce((n, p) => n + p.bundles, 0);
      message(msg, parts.length > 1
        ? `Export in ${parts.length} parts: ${plural(total, "bundle")}. Each part is a whole export with its own receipt.`
        : `Export ${r.export_id}: ${plural(r.bundles, "bundle")}, ${r.bytes} bytes.`, "good");
      fill(exportLink, ...parts.map((p, i) => action(`Download ${p.file}`, () => download(p.href, p.file), { cls: "secondary", attrs: { id: i === 0 ? "export-download" : `export-download-${i + 1}` } })));
    } catch (err) {
      message(msg, err.message, "bad");
    }
  }, { cls: "secondary", busyLabel: "Exporting…", attrs: { id: "export" } });
  const file = h("input", { type: "file", id: "receipt-file", accept: ".json,application/json" });
  const importBtn = action("Import receipt", async () => {
    const f = file.files?.[0];
    if (!f) {
      message(msg, "Choose the receipt file (receipt.json) the vendor's receiver gave you first.", "bad");
      file.focus();
      return;
    }
    try {
      const r = await api("/api/v1/import-receipt", { method: "POST", body: await f.text() });
      const rejected = Array.isArray(r.rejected) && r.rejected.length ? ` ${plural(r.rejected.length, "bundle")} rejected by the receiver, still pending.` : "";
      message(msg, `Receipt ${r.receipt_id}: ${plural(r.acknowledged.length, "bundle")} acknowledged and removed from the spool${r.already.length ? `, ${r.already.length} already were` : ""}.${rejected}`, "good");
      await ctx.refresh();
    } catch (err) {
      message(msg, err.message, "bad");
    }
  }, { cls: "secondary", busyLabel: "Importing…", attrs: { id: "import-receipt" } });
  return h("section", { class: "card stack", "aria-labelledby": "h-manual" },
    h("h2", { id: "h-manual" }, "Manual reporting"),
    h("p", { class: "muted" }, "For isolated networks: license telemetry is not uploaded; export the pending bundles, carry the zip to the vendor's receiver, and import the signed receipt it gives back. The compliance clock moves when the receipt is imported."),
    h("label", { class: "choice", for: "manual-reporting" }, box, "Report license telemetry by hand"),
    h("div", { class: "field" }, h("label", { for: "export-max-size" }, "Largest part, in MB (optional: split the export for media or mail limits)"), maxSize),
    h("div", { class: "row" }, exportBtn), exportLink,
    h("div", { class: "field" }, h("label", { for: "receipt-file" }, "Receipt from the vendor"), file),
    h("div", { class: "row" }, importBtn),
    msg);
}

function connectionSection() {
  const out = h("div", { id: "connection-result" });
  const btn = action("Test the connection", async () => {
    fill(out, h("p", { class: "muted" }, "Testing…"));
    try {
      const steps = await api("/api/v1/diagnostics/connection", { method: "POST", body: {} });
      fill(out, h("ol", {}, steps.map((st) => h("li", {},
        h("span", { class: `badge ${st.ok ? "state-ok" : "state-critical"}` }, st.ok ? "OK" : "Failed"), " ",
        h("strong", {}, st.step), ` (${st.ms} ms): ${st.detail}`, st.hint ? [h("br"), st.hint] : null))));
    } catch (err) {
      fill(out, h("p", { class: "note bad" }, err.message));
    }
  }, { cls: "secondary", busyLabel: "Testing…", attrs: { id: "test-connection" } });
  return h("section", { class: "card stack", "aria-labelledby": "h-connection" },
    h("h2", { id: "h-connection" }, "Connection to the vendor"),
    h("p", { class: "muted" }, "Each step of the path: name lookup, connection, proxy, TLS and the receiver's answer."),
    btn, out);
}

export async function render(main, ctx) {
  const [proxy, proxyLoaded] = proxySection();
  const [registration, registrationLoaded] = registrationSection();
  const [notes, notesLoaded] = notificationsSection();
  fill(main,
    h("h1", {}, "Settings"),
    h("div", { class: "grid" }, proxy, registration, notes, manualSection(ctx), connectionSection()));
  await Promise.all([proxyLoaded, registrationLoaded, notesLoaded]);
  return {};
}
