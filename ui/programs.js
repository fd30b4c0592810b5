// Programs: what each collects in plain words, whether it identifies this machine, how often it
// uploads, and its switch (License Telemetry: automatic or manual reporting).

import { api } from "./api.js";
import { h, fill, message, plural, cadence } from "./dom.js";

export const title = "Programs";

/** What each program collects, in words a person can check against the data preview. */
export const DESCRIPTIONS = {
  telemetry:
    "The license inventory (every feature line: quantity, expiry, subscription dates), license usage " +
    "(the most licenses in use at once per feature and hour, with the users and devices that used them), " +
    "and the server's identity (install id, host name, product version). Your license agreement requires " +
    "it: the compliance clock counts the days since it was last acknowledged.",
  call_home:
    "System and product configuration (operating system, CPU, memory, disks, product and agent versions, " +
    "program states), performance samples of the machine and the license server processes, and counts of " +
    "error lines in the product logs with up to three redacted samples each.",
  ceip:
    "Counts only: license usage per feature and hour and a machine profile, with no user, device or host " +
    "names and no install id. Nothing in it can be traced back to a person or this machine.",
  events:
    "License events (a license about to expire, expired, a subscription ending, more licenses in use than " +
    "installed) so the vendor can warn you and renew in time. Needs registration with the vendor.",
};

function badges(p) {
  return h("p", { class: "row" },
    p.mandatory ? h("span", { class: "badge" }, "Mandatory") : h("span", { class: "badge" }, "Optional"),
    p.identifiable
      ? h("span", { class: "badge state-warning" }, "Identifies this machine")
      : h("span", { class: "badge state-ok" }, "Not identifiable"),
    p.locked ? h("span", { class: "badge" }, "Locked on") : null);
}

function telemetrySwitch(p, ctx, feedback, pending) {
  const name = "telemetry-mode";
  const choose = async (mode) => {
    try {
      await api("/api/v1/programs/telemetry", { method: "PUT", body: { mode } });
      message(feedback, mode === "manual"
        ? "License telemetry: manual reporting. Nothing is uploaded; export the pending bundles and import the receipt (Settings)."
        : "License telemetry: automatic uploads.", "good");
      await ctx.refresh();
      ctx.repaint?.();
    } catch (e) {
      message(feedback, e.message, "bad");
    }
  };
  return h("fieldset", {},
    h("legend", {}, "How license telemetry reaches the vendor"),
    [["automatic", "Automatic: uploaded on schedule"], ["manual", "Manual reporting: for isolated networks, exported and carried out by hand"]]
      .map(([mode, label]) => h("label", { class: "choice" },
        h("input", { type: "radio", name, id: `telemetry-${mode}`, value: mode, checked: p.mode === mode, onchange: () => choose(mode) }),
        label)),
    h("p", { class: "muted" }, "It cannot be turned off: the license agreement requires it. ",
      pending ? `${plural(pending, "bundle")} pending.` : ""));
}

function optionalSwitch(p, ctx, feedback, pending) {
  const id = `switch-${p.name}`;
  const input = h("input", {
    type: "checkbox", role: "switch", id, checked: p.enabled, disabled: p.locked,
    "aria-describedby": `${id}-hint`,
  });
  input.addEventListener("change", async () => {
    const on = input.checked;
    input.disabled = true;
    try {
      const r = await api(`/api/v1/programs/${p.name}`, { method: "PUT", body: { enabled: on } });
      const w = r.withdrawn.length ? ` ${plural(r.withdrawn.length, "pending bundle")} withdrawn (the ledger records each).` : "";
      message(feedback, `${p.title} is ${on ? "on" : "off"}.${w}`, "good");
      await ctx.refresh();
      ctx.repaint?.();
    } catch (e) {
      input.checked = !on;
      message(feedback, e.message, "bad");
    } finally {
      input.disabled = p.locked;
    }
  });
  const hint = p.locked
    ? `Locked on: ${p.locked_reason || "by the configuration"}. It cannot be turned off here.`
    : p.enabled
      ? `Turning it off stops collecting and deletes its ${pending ? plural(pending, "pending bundle") : "pending bundles"} unsent.`
      : "Turning it on starts collecting on its schedule; you can read every bundle before it is sent.";
  return h("div", { class: "stack" },
    h("label", { class: "choice", for: id }, input, `Send ${p.title}${p.title.endsWith(" data") ? "" : " data"}`),
    h("p", { class: "muted", id: `${id}-hint` }, hint));
}

export async function render(main, ctx) {
  const feedback = h("div", { class: "message", id: "programs-message" });
  const grid = h("div", { class: "grid" });
  const pendingOf = (name) => ctx.status?.spool.by_program[name] || 0;
  // Repaints the cards, keeping the keyboard focus on the control that had it.
  const paint = (programs) => {
    const focused = document.activeElement?.id;
    fill(grid, programs.map((p) =>
      h("section", { class: "card", "aria-labelledby": `h-${p.name}`, id: `program-${p.name}` },
        h("h2", { id: `h-${p.name}` }, p.title),
        badges(p),
        h("p", {}, DESCRIPTIONS[p.name] || ""),
        h("dl", { class: "facts" },
          h("dt", {}, "State"), h("dd", {}, p.name === "telemetry" ? `on, ${p.mode}` : p.enabled ? "on" : "off"),
          h("dt", {}, "Uploads"), h("dd", {}, `every ${cadence(p.upload_interval)}`),
          h("dt", {}, "Pending"), h("dd", {}, plural(pendingOf(p.name), "bundle"))),
        p.name === "telemetry"
          ? telemetrySwitch(p, ctx, feedback, pendingOf(p.name))
          : optionalSwitch(p, ctx, feedback, pendingOf(p.name)))));
    if (focused) document.getElementById(focused)?.focus();
  };
  fill(main,
    h("h1", {}, "Programs"),
    h("p", { class: "muted" }, "What this agent collects and sends, per program. Your choices are kept by the agent and apply at once: a program is checked at collection and again just before each upload."),
    feedback,
    grid);
  paint(await api("/api/v1/programs"));
  return { update: (st) => paint(st.programs) };
}
