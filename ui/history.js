// History and ledger: every upload attempt with its result code and message (paged), the sent
// bundles with their receipts, the whole ledger, and "verify chain".

import { api } from "./api.js";
import { h, fill, when, bytes, table, action, message, codeWords, TITLES } from "./dom.js";

export const title = "History & ledger";

const PAGE = 20;

function receiptOf(row) {
  try {
    return JSON.parse(row.detail);
  } catch {
    return null;
  }
}

export async function render(main) {
  let offset = 0;
  const attempts = h("div", { id: "attempts" });
  const sent = h("div", { id: "sent" });
  const ledger = h("div", { id: "ledger" });
  const verifyResult = h("div", { class: "message", id: "verify-result" });

  const paintAttempts = async () => {
    const page = await api(`/api/v1/history?limit=${PAGE}&offset=${offset}`);
    const prev = h("button", { type: "button", class: "secondary", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); paintAttempts().then(() => prev.focus()); } }, "Newer");
    const next = h("button", { type: "button", class: "secondary", disabled: page.next_offset == null, onclick: () => { offset = page.next_offset; paintAttempts().then(() => next.focus()); } }, "Older");
    fill(attempts,
      table("Upload attempts", [
        { label: "When" }, { label: "Program" }, { label: "Result" }, { label: "HTTP", cls: "num" },
        { label: "Message" }, { label: "Took", cls: "num" }, { label: "Bundle" },
      ], page.items.map((a) => [
        when(a.at),
        TITLES[a.program] || a.program,
        [h("span", { class: `badge ${a.code === "CTX_UPLOADER_SUCCESS" ? "state-ok" : "state-critical"}` }, a.code === "CTX_UPLOADER_SUCCESS" ? "OK" : "Failed"),
          " ", codeWords(a.code), h("br"), h("span", { class: "mono muted" }, a.code)],
        a.http_status ?? "–",
        a.message || "–",
        `${a.duration_ms} ms`,
        a.bundle ? h("span", { class: "mono" }, a.bundle) : "–",
      ]), { emptyText: "No upload attempt yet." }),
      h("nav", { class: "pager", "aria-label": "Attempt pages" }, prev,
        h("span", { class: "muted" }, page.items.length ? `Attempts ${offset + 1}–${offset + page.items.length}` : ""), next));
  };

  const paintLedger = async () => {
    const rows = await api("/api/v1/ledger");
    const sentRows = rows.filter((r) => r.event === "sent").reverse();
    fill(sent, table("Sent bundles and their receipts", [
      { label: "Acknowledged" }, { label: "Program" }, { label: "Bundle" }, { label: "SHA-256", cls: "hash" },
      { label: "Size", cls: "num" }, { label: "Receipt" },
    ], sentRows.map((r) => {
      const rc = receiptOf(r);
      return [
        when(r.at), TITLES[r.program] || r.program, h("span", { class: "mono" }, r.bundle), r.sha256, bytes(r.size),
        rc ? h("details", {}, h("summary", {}, rc.receipt_id || "receipt"), h("pre", { tabindex: "0" }, JSON.stringify(rc, null, 2))) : r.detail,
      ];
    }), { emptyText: "Nothing has been sent yet." }));
    fill(ledger, table("Ledger", [
      { label: "#", cls: "num" }, { label: "When" }, { label: "Event" }, { label: "Program" }, { label: "Bundle" },
      { label: "SHA-256", cls: "hash" }, { label: "Row hash", cls: "hash" },
    ], rows.slice().reverse().map((r) => [
      r.seq, when(r.at), r.event, TITLES[r.program] || r.program, h("span", { class: "mono" }, r.bundle), r.sha256 || "–", r.hash,
    ]), { emptyText: "The ledger is empty." }));
  };

  const verify = action("Verify chain", async () => {
    message(verifyResult, "Verifying…");
    try {
      const v = await api("/api/v1/ledger/verify");
      message(verifyResult, v.ok ? v.summary : `The ledger does not verify: ${v.problem}`, v.ok ? "good" : "bad");
    } catch (e) {
      message(verifyResult, e.message, "bad");
    }
  }, { busyLabel: "Verifying…", attrs: { id: "verify-chain" } });

  fill(main,
    h("h1", {}, "History & ledger"),
    h("section", { class: "stack", "aria-labelledby": "h-attempts" },
      h("h2", { id: "h-attempts" }, "Upload attempts"), attempts),
    h("section", { class: "stack", "aria-labelledby": "h-sent" },
      h("h2", { id: "h-sent" }, "Sent bundles"),
      h("p", { class: "muted" }, "Each acknowledged bundle with the receiver's signed receipt for its SHA-256."),
      sent),
    h("section", { class: "stack", "aria-labelledby": "h-ledger" },
      h("h2", { id: "h-ledger" }, "Ledger"),
      h("p", { class: "muted" }, "Everything that left the spool: sent, withdrawn, evicted, quarantined, reported by hand. Each row hashes its fields and the previous row's hash, so an edit, a removal or a reordering is found."),
      h("div", { class: "row" }, verify),
      verifyResult,
      ledger));
  await Promise.all([paintAttempts(), paintLedger()]);
  return {
    update: (_st, kind) => {
      if (kind === "upload" || kind === "state") {
        if (offset === 0) paintAttempts().catch(() => {});
        paintLedger().catch(() => {});
      }
    },
  };
}
