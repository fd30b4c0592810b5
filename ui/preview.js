// Data preview: the pending bundles, and for one of them its manifest and every file as it will
// be sent, JSON pretty-printed and searchable, each checked here against the SHA-256 the
// manifest states; the exact zip to download, with the SHA-256 the ledger will record;
// "withdraw" for optional programs' bundles; and the quarantine, to retry or purge.

import { api, download, seg } from "./api.js";
import { h, fill, bytes, when, plural, message, announce, table, action, TITLES } from "./dom.js";

export const title = "Data preview";

/** `upload_compliance_20261120T140500Z_ab12cd34.zip` → its creation time (ISO). */
function stampOf(name) {
  const m = /_(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z_/.exec(name);
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z` : null;
}

async function sha256(buf) {
  if (!globalThis.crypto?.subtle) return null;
  const d = await crypto.subtle.digest("SHA-256", buf);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A file's bytes as text for reading: JSON and NDJSON pretty-printed, the rest as it is. */
function readable(buf) {
  const text = new TextDecoder("utf-8", { fatal: false }).decode(buf);
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    /* not one JSON document */
  }
  const lines = text.split("\n").filter((l) => l.trim());
  if (lines.length > 1) {
    try {
      return lines.map((l) => JSON.stringify(JSON.parse(l), null, 2)).join("\n");
    } catch {
      /* not NDJSON either */
    }
  }
  return text;
}

/** The quarantine: each file with why it is there, to retry (re-checked, queued again) or purge. */
function quarantineSection(items, main) {
  const note = h("div", { id: "quarantine-message", class: "message" });
  const act = async (q, how) => {
    try {
      const r = how === "retry"
        ? await api(`/api/v1/quarantine/${seg(q.id)}/retry`, { method: "POST", body: {} })
        : await api(`/api/v1/quarantine/${seg(q.id)}`, { method: "DELETE" });
      await list(main);
      message(main.querySelector("#quarantine-message"), r.action === "requeued"
        ? `${q.id} passed its checks and is queued again as ${r.bundle}: it goes with the next upload.`
        : `${q.id} purged: deleted for good, and the ledger records it.`, "good");
    } catch (err) {
      message(note, err.message, "bad");
    }
  };
  const rows = items.map((q) => {
    const confirm = h("span", { hidden: true },
      h("button", { type: "button", class: "danger", "data-action": "purge-yes", "data-id": q.id, onclick: () => act(q, "purge") }, "Delete for good"),
      " ",
      h("button", { type: "button", class: "secondary", onclick: () => { confirm.hidden = true; } }, "Keep it"));
    return [
      h("span", { class: "mono" }, q.id),
      q.reason || "—",
      when(q.quarantined_at),
      bytes(q.size),
      h("span", { class: "row" },
        action("Retry", () => act(q, "retry"), { cls: "secondary", busyLabel: "Checking…", attrs: { "data-action": "retry", "data-id": q.id } }),
        h("button", { type: "button", class: "danger", "data-action": "purge", "data-id": q.id, onclick: () => { confirm.hidden = false; } }, "Purge"),
        confirm),
    ];
  });
  return h("section", { "aria-labelledby": "h-quarantine", id: "quarantine" },
    h("h2", { id: "h-quarantine" }, "Quarantine"),
    h("p", {}, "Bundles the receiver refused for good, or that failed a check. Retry checks one again and queues it for the next upload; purge deletes it for good (the ledger records it)."),
    note,
    table("Quarantined files", [
      { label: "File" }, { label: "Why" }, { label: "Since" }, { label: "Size", cls: "num" }, { label: "Action" },
    ], rows, { emptyText: "Nothing is in quarantine." }));
}

async function list(main) {
  const [bundles, quarantined] = await Promise.all([api("/api/v1/bundles"), api("/api/v1/quarantine")]);
  fill(main,
    h("h1", {}, "Data preview"),
    h("p", {}, "Every bundle waiting to be uploaded. Open one to read each file exactly as it will be sent; what you download here is the zip byte for byte."),
    h("div", { id: "preview-message", class: "message" }),
    table("Pending bundles", [
      { label: "Bundle" }, { label: "Program" }, { label: "Created" }, { label: "Size", cls: "num" },
    ], bundles.map((b) => [
      h("a", { href: `#/preview/${seg(b.id)}`, class: "mono" }, b.id),
      TITLES[b.program] || b.program,
      when(stampOf(b.id)),
      bytes(b.size),
    ]), { emptyText: "No bundle is pending: everything collected has been sent (see History)." }),
    quarantineSection(quarantined, main));
  return {};
}

function fileView(name, holds, size, expectedSha, buf, gotSha) {
  const text = readable(buf);
  const pre = h("pre", { tabindex: "0", "aria-label": `Contents of ${name}` });
  pre.textContent = text;
  let check = null;
  if (expectedSha) {
    check = gotSha === null
      ? h("span", { class: "muted" }, "(not checked: this browser has no SHA-256 here)")
      : gotSha === expectedSha
        ? h("span", { class: "badge state-ok" }, "matches the manifest")
        : h("span", { class: "badge state-critical" }, "does NOT match the manifest");
  }
  const details = h("details", { class: "file", open: true, dataset: { name } },
    h("summary", {},
      h("span", { class: "fname" }, name),
      h("span", { class: "muted" }, holds),
      h("span", {}, `${bytes(size)} (${size} bytes)`),
      h("span", { class: "mono muted" }, `SHA-256 ${gotSha || expectedSha || "–"}`),
      check,
      h("span", { class: "visually-hidden count" })),
    pre);
  return { details, pre, text, name };
}

/** Highlights `query` in every file; returns [matches, files with a match]. */
function highlight(views, query) {
  let total = 0;
  let files = 0;
  const q = query.toLowerCase();
  for (const v of views) {
    const count = v.details.querySelector(".count");
    if (!q) {
      v.pre.textContent = v.text;
      count.textContent = "";
      continue;
    }
    const lower = v.text.toLowerCase();
    const parts = [];
    let at = 0;
    let n = 0;
    for (let i = lower.indexOf(q); i !== -1 && n < 5000; i = lower.indexOf(q, i + q.length)) {
      parts.push(v.text.slice(at, i), h("mark", {}, v.text.slice(i, i + q.length)));
      at = i + q.length;
      n++;
    }
    parts.push(v.text.slice(at));
    fill(v.pre, parts);
    count.textContent = n ? `, ${plural(n, "match", "matches")}` : "";
    if (n) {
      v.details.open = true;
      files++;
    }
    total += n;
  }
  return [total, files];
}

async function one(main, ctx, id) {
  const bundles = await api("/api/v1/bundles");
  const b = bundles.find((x) => x.id === id);
  if (!b) {
    fill(main, h("h1", {}, "Data preview"),
      h("p", { class: "note bad" }, `No pending bundle ${id}: it was sent or withdrawn meanwhile.`),
      h("p", {}, h("a", { href: "#/preview" }, "Back to the pending bundles")));
    return {};
  }
  fill(main, h("h1", {}, "Data preview"), h("p", { class: "muted" }, `Reading ${id}…`));
  const base = `/api/v1/bundles/${seg(id)}`;
  const manifestResp = await api(base, { raw: true });
  const manifestBuf = await manifestResp.arrayBuffer();
  const manifest = JSON.parse(new TextDecoder().decode(manifestBuf));
  const raw = await api(`${base}/raw`, { raw: true });
  const zip = await raw.arrayBuffer();
  const zipSha = await sha256(zip);
  const agentSha = raw.headers.get("x-bundle-sha256");

  const views = [fileView("manifest.json", "what the bundle holds: each file with its size and SHA-256", manifestBuf.byteLength, null, manifestBuf, await sha256(manifestBuf))];
  for (const f of manifest.files) {
    const resp = await api(`${base}/files/${seg(f.name)}`, { raw: true });
    const buf = await resp.arrayBuffer();
    views.push(fileView(f.name, f.holds, buf.byteLength, f.sha256, buf, await sha256(buf)));
  }

  const feedback = h("div", { class: "message", id: "withdraw-message" });
  const search = h("input", { type: "search", id: "preview-search", autocomplete: "off", "aria-describedby": "search-result" });
  const searchResult = h("p", { id: "search-result", class: "muted", "aria-live": "polite" });
  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const [n, files] = highlight(views, search.value.trim());
      searchResult.textContent = search.value.trim()
        ? n ? `${plural(n, "match", "matches")} in ${plural(files, "file")}.` : "No match."
        : "";
    }, 150);
  });

  const optional = b.program !== "telemetry";
  const confirmBox = h("div", { class: "note bad", hidden: true, id: "withdraw-confirm" },
    h("p", {}, "Withdraw this bundle? It is deleted without being sent, and the ledger records the withdrawal. The program stays on; turn it off in Programs to stop collecting."),
    h("div", { class: "row" },
      h("button", { type: "button", class: "danger", id: "withdraw-yes", onclick: async (e) => {
        e.target.disabled = true;
        try {
          await api(base, { method: "DELETE" });
          announce(`${id} withdrawn.`);
          await ctx.refresh();
          ctx.navigate("#/preview");
        } catch (err) {
          e.target.disabled = false;
          message(feedback, err.message, "bad");
        }
      } }, "Withdraw"),
      h("button", { type: "button", class: "secondary", onclick: () => { confirmBox.hidden = true; withdraw.focus(); } }, "Keep it")));
  const withdraw = h("button", { type: "button", class: "danger", id: "withdraw", onclick: () => {
    confirmBox.hidden = false;
    confirmBox.querySelector("#withdraw-yes").focus();
  } }, "Withdraw this bundle…");

  const sameSha = zipSha && agentSha ? zipSha === agentSha : null;
  fill(main,
    h("p", {}, h("a", { href: "#/preview" }, "← All pending bundles")),
    h("h1", {}, "Data preview"),
    h("section", { class: "card stack", "aria-labelledby": "h-bundle" },
      h("h2", { id: "h-bundle", class: "mono" }, id),
      h("dl", { class: "facts" },
        h("dt", {}, "Program"), h("dd", {}, `${TITLES[b.program] || b.program} (upload type ${manifest.upload_type})`),
        h("dt", {}, "Created"), h("dd", {}, when(manifest.created_at)),
        ...(manifest.ceip_id
          ? [h("dt", {}, "CEIP id"), h("dd", { class: "mono" }, `${manifest.ceip_id} (no install id: CEIP is sent anonymously)`)]
          : [h("dt", {}, "Install id"), h("dd", { class: "mono" }, manifest.install_id)]),
        h("dt", {}, "Agent version"), h("dd", {}, manifest.agent_version),
        h("dt", {}, "Zip size"), h("dd", {}, `${bytes(zip.byteLength)} (${zip.byteLength} bytes)`),
        h("dt", {}, "Zip SHA-256"), h("dd", { class: "mono", id: "zip-sha" }, zipSha || agentSha),
        h("dt", {}, "Files"), h("dd", {}, `${manifest.files.length} data files and manifest.json`)),
      h("p", { class: sameSha === false ? "note bad" : "note good" },
        sameSha === false
          ? "The SHA-256 computed here differs from the agent's: do not trust this copy."
          : "This SHA-256 is the upload's Idempotency-Key and what the ledger will record once the receiver acknowledges it."),
      manifest.errors?.length
        ? h("div", {}, h("h3", {}, "Collector errors recorded in the manifest"),
          h("ul", {}, manifest.errors.map((e) => h("li", {}, h("strong", {}, e.collector), `: ${e.message}`))))
        : null,
      h("div", { class: "row" },
        action("Download the exact zip", () => download(`${base}/raw`, id), { attrs: { id: "download-zip" } }),
        optional ? withdraw : h("span", { class: "muted" }, "License-telemetry bundles are mandatory and cannot be withdrawn.")),
      confirmBox,
      feedback),
    h("section", { "aria-labelledby": "h-files" },
      h("h2", { id: "h-files" }, "Files"),
      h("div", { class: "field" },
        h("label", { for: "preview-search" }, "Search in this bundle",
          h("span", { class: "hint" }, " (every file, as sent)")),
        search),
      searchResult,
      views.map((v) => v.details)));
  return {};
}

export async function render(main, ctx, arg) {
  return arg ? one(main, ctx, arg) : list(main);
}
