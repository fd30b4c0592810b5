// Licenses: the inventory with days to expiry, license events, problems in the files, and the
// usage chart per feature (the most in use at once per hour against the licensed quantity).

import { api } from "./api.js";
import { h, fill, table, when } from "./dom.js";
import { usageChart } from "./chart.js";

export const title = "Licenses";

/** Installed per feature, as the agent counts it: unexpired lines' quantities (null: uncounted). */
function installed(licenses) {
  const out = new Map();
  for (const l of licenses.filter((x) => !x.expired)) {
    const cur = out.has(l.feature) ? out.get(l.feature) : 0;
    out.set(l.feature, cur === null || l.quantity === null ? null : cur + l.quantity);
  }
  return out;
}

function expiryBadge(l) {
  if (l.expiry === "permanent") return h("span", { class: "badge" }, "permanent");
  if (l.expired) return h("span", { class: "badge state-critical" }, "expired");
  const d = l.days_to_expiry;
  const cls = d <= 7 ? "state-critical" : d <= 30 ? "state-warning" : "state-ok";
  return h("span", { class: `badge ${cls}` }, `${d} ${d === 1 ? "day" : "days"}`);
}

export async function render(main) {
  const [inv, usage] = await Promise.all([api("/api/v1/licenses"), api("/api/v1/usage")]);
  const counts = installed(inv.licenses);
  const byFeature = new Map();
  for (const r of usage) {
    if (!byFeature.has(r.feature)) byFeature.set(r.feature, []);
    byFeature.get(r.feature).push(r);
  }
  const unused = [...counts.keys()].filter((f) => !byFeature.has(f));
  fill(main,
    h("h1", {}, "Licenses"),
    h("p", { class: "muted" }, inv.files.length
      ? `From ${inv.files.length} license ${inv.files.length === 1 ? "file" : "files"}, scanned just now.`
      : "No license file is configured (licenses.files in the configuration)."),
    inv.events.length
      ? h("section", { class: "card", "aria-labelledby": "h-events" },
        h("h2", { id: "h-events" }, "License events"),
        h("ul", { class: "plain" }, inv.events.map((e) =>
          h("li", {}, h("span", { class: `badge ${e.kind === "expired" || e.kind === "over_quantity" ? "state-critical" : "state-warning"}` }, e.kind.replace("_", " ")), " ",
            h("strong", {}, e.feature), `: ${e.message}`))))
      : null,
    (inv.grace_periods || []).length
      ? h("section", { class: "card", "aria-labelledby": "h-grace", id: "grace-periods" },
        h("h2", { id: "h-grace" }, "Grace periods"),
        h("ul", { class: "plain" }, inv.grace_periods.map((g) =>
          h("li", { "data-feature": g.feature },
            h("span", { class: `badge ${g.ended || g.days_left <= 1 ? "state-critical" : "state-warning"}` }, g.ended ? "ended" : `${g.days_left} ${g.days_left === 1 ? "day" : "days"} left`), " ",
            h("strong", {}, g.feature), `: more in use than installed; the ${g.days}-day supplemental grace period runs from `, when(g.start), " to ", when(g.end), "."))))
      : null,
    h("section", { class: "stack", "aria-labelledby": "h-inventory" },
      h("h2", { id: "h-inventory" }, "Inventory"),
      table("License inventory", [
        { label: "Feature" }, { label: "Vendor" }, { label: "Version" }, { label: "Type" },
        { label: "Quantity", cls: "num" }, { label: "Expires" }, { label: "Days to expiry" }, { label: "Subscription end" }, { label: "Where" },
      ], inv.licenses.map((l) => [
        h("strong", {}, l.feature), l.vendor, l.version, l.license_type || l.kind,
        l.uncounted ? "uncounted" : l.quantity, l.expiry, expiryBadge(l), l.subscription_end || "–",
        h("span", { class: "mono" }, `${l.file.split("/").pop()}:${l.line}`),
      ]), { emptyText: "No license lines found." })),
    inv.problems.length
      ? h("section", { class: "stack", "aria-labelledby": "h-problems" },
        h("h2", { id: "h-problems" }, "Problems in the license files"),
        h("ul", {}, inv.problems.map((p) => h("li", {}, h("span", { class: "mono" }, `${p.file.split("/").pop()}:${p.line}`), ` ${p.message}`))))
      : null,
    h("section", { class: "stack", "aria-labelledby": "h-usage", id: "usage" },
      h("h2", { id: "h-usage" }, "Usage over time"),
      h("p", { class: "muted" }, "Per feature and hour, from the license server's debug logs: the most licenses in use at once, against the quantity installed."),
      byFeature.size
        ? h("div", { class: "charts" }, [...byFeature].map(([f, rows]) => usageChart(f, rows, counts.has(f) ? counts.get(f) : null)))
        : h("p", { class: "muted" }, "No usage recorded yet (licenses.debug_logs in the configuration)."),
      unused.length ? h("p", { class: "muted" }, `No use recorded for: ${unused.join(", ")}.`) : null));
  return {};
}
