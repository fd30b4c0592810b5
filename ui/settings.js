// Settings: the proxy (the password is write-only: sent, never shown back), notifications,
// manual reporting with export and receipt import, and a connection test.

import { api, ApiError, runJob } from "./api.js";
import { h, fill, message, action, plural } from "./dom.js";

export const title = "Settings";

const notHere = (what) =>
  `This agent does not offer ${what} through its API (it answered 404); set it in the configuration file instead.`;

function proxySection() {
  const msg = h("div", { class: "message", id: "proxy-message" });
  const url = h("input", { type: "url", id: "proxy-url", name: "url", autocomplete: "off", placeholder: "http://proxy.example:3128", "aria-describedby": "proxy-url-hint" });
  const user = h("input", { type: "text", id: "proxy-user", name: "username", autocomplete: "off" });
  const pass = h("input", { type: "password", id: "proxy-password", name: "password", autocomplete: "new-password", "aria-describedby": "proxy-password-hint" });
  const passHint = h("span", { class: "hint", id: "proxy-password-hint" }, "Write-only: it goes to the system keyring and is never shown again. Leave empty to keep the saved one.");
  const form = h("form", { id: "proxy-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "proxy-url" }, "Proxy URL"), url,
      h("span", { class: "hint", id: "proxy-url-hint" }, "Empty: connect directly. No credentials in the URL.")),
    h("div", { class: "field" }, h("label", { for: "proxy-user" }, "User name"), user),
    h("div", { class: "field" }, h("label", { for: "proxy-password" }, "Password"), pass, passHint),
    h("div", { class: "row" }, h("button", { type: "submit", id: "proxy-save" }, "Save proxy")),
    msg);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { url: url.value.trim(), username: user.value.trim() };
    if (pass.value) body.password = pass.value;
    try {
      await api("/api/v1/proxy", { method: "PUT", body });
      pass.value = "";
      message(msg, "Proxy saved. The next upload uses it.", "good");
    } catch (err) {
      message(msg, err.status === 404 ? notHere("proxy settings") : err.message, "bad");
    }
  });
  const load = api("/api/v1/proxy").then((p) => {
    url.value = p.url || "";
    user.value = p.username || "";
    if (p.password_set) passHint.textContent = "A password is saved (write-only: never shown). Type a new one to replace it, or leave empty to keep it.";
  }).catch((err) => {
    if (err instanceof ApiError && err.status === 404) message(msg, notHere("proxy settings"), "bad");
  });
  return [h("section", { class: "card", "aria-labelledby": "h-proxy" },
    h("h2", { id: "h-proxy" }, "Proxy"), form), load];
}

function notificationsSection() {
  const msg = h("div", { class: "message", id: "notifications-message" });
  const box = h("input", { type: "checkbox", role: "switch", id: "notifications", disabled: true });
  box.addEventListener("change", async () => {
    try {
      await api("/api/v1/notifications", { method: "PUT", body: { enabled: box.checked } });
      message(msg, `Desktop notifications ${box.checked ? "on" : "off"}.`, "good");
    } catch (err) {
      box.checked = !box.checked;
      message(msg, err.status === 404 ? notHere("notification settings") : err.message, "bad");
    }
  });
  const load = api("/api/v1/notifications").then((n) => {
    box.checked = !!n.enabled;
    box.disabled = false;
  }).catch((err) => {
    message(msg, err.status === 404 ? notHere("notification settings") : err.message, "bad");
  });
  return [h("section", { class: "card", "aria-labelledby": "h-notifications" },
    h("h2", { id: "h-notifications" }, "Notifications"),
    h("p", { class: "muted" }, "Desktop notifications for failed uploads, the approaching compliance limit and expiring licenses."),
    h("label", { class: "choice", for: "notifications" }, box, "Show desktop notifications"),
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
  const exportBtn = action("Export pending bundles", async () => {
    message(msg, "Exporting…");
    try {
      const job = await runJob("/api/v1/export", {});
      if (!job.ok) throw new Error(job.result?.error || "the export failed");
      const r = job.result;
      message(msg, `Export ${r.export_id}: ${plural(r.bundles, "bundle")}, ${r.bytes} bytes.`, "good");
      fill(exportLink, h("a", { class: "button secondary", href: r.href, download: r.file, id: "export-download" }, `Download ${r.file}`));
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
  const [notes, notesLoaded] = notificationsSection();
  fill(main,
    h("h1", {}, "Settings"),
    h("div", { class: "grid" }, proxy, notes, manualSection(ctx), connectionSection()));
  await Promise.all([proxyLoaded, notesLoaded]);
  return {};
}
