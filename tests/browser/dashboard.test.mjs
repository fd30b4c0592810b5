// The dashboard in a real browser: Debian's Chromium, driven by playwright-core, against a real
// agent (`callhome run --headless`) and the reference receiver over self-signed TLS. Signs in
// through `callhome dashboard --no-open`'s one-time link and checks what the issue promises:
// a reused link is refused, CEIP toggled in the page changes the API's answer, the previewed
// zip is byte for byte the spooled file and what the ledger records after "Upload now", the
// license chart draws the debug log's usage, the sign-in page `callhome dashboard` writes signs
// in from its file, a server on another local port the signed-in browser visits receives
// nothing the API accepts, and axe-core finds nothing serious on any page, light or dark. Screenshots go to
// target/browser-artifacts/ (or $BROWSER_ARTIFACTS).
//
// Run: npm ci && npm test (in tests/browser), after `cargo build --bins`; scripts/test does both.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import axe from "axe-core";
import { World, ROOT, CHROMIUM_ARGS, chromiumPath, sha256, waitFor } from "./harness.mjs";

const ARTIFACTS = process.env.BROWSER_ARTIFACTS || join(ROOT, "target", "browser-artifacts");
const PAGES = {
  overview: "Overview",
  programs: "Programs",
  preview: "Data preview",
  history: "History & ledger",
  licenses: "Licenses",
  settings: "Settings",
};
/** Routes this agent does not offer yet (a 404 from them is expected); none at the moment. */
const OPTIONAL_ROUTES = [];

const world = new World();
/** What the webhook channel delivered: the JSON bodies, in order. */
const hooks = [];
let hookServer;
let browser;
let context;
let page;
let origin;
const problems = []; // page errors, console errors, unexpected 4xx/5xx
/** Refusals a test provokes on purpose, as "STATUS METHOD PATH". */
const expected = new Set();

function watch(p) {
  p.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  p.on("console", (m) => {
    const status = /status of (\d+)/.exec(m.text())?.[1];
    const provoked = status && [...expected].some((e) => e.startsWith(`${status} `));
    if (m.type() === "error" && status !== "404" && !provoked) problems.push(`console: ${m.text()}`);
  });
  p.on("response", (r) => {
    const path = new URL(r.url()).pathname;
    if (expected.has(`${r.status()} ${r.request().method()} ${path}`)) return;
    if (r.status() >= 400 && !(r.status() === 404 && OPTIONAL_ROUTES.includes(path))) {
      problems.push(`${r.status()} for ${r.request().method()} ${path}`);
    }
  });
  return p;
}

/** Navigates within the dashboard and waits until the page is drawn. */
async function open(hash) {
  await page.goto(`${origin}/${hash}`);
  const name = hash.replace(/^#\//, "");
  await page.waitForSelector(`main[data-ready="${decodeURIComponent(name)}"]`, { timeout: 30000 });
}

/** A one-time link from the CLI, as a person gets it. */
function link() {
  const out = world.cli(["dashboard", "--no-open"]);
  assert.equal(out.status, 0, out.stderr);
  const url = out.stdout.trim();
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/login\?code=[0-9a-f]{64}$/);
  return url;
}

async function axeCheck(p, label) {
  await p.evaluate(axe.source);
  const result = await p.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${label}: ${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
}

async function finishedJob(path, body) {
  let job = await world.api(path, { method: "POST", body });
  await waitFor(`the ${job.kind} job`, async () => {
    job = await world.api(job.href);
    return job.state !== "running";
  }, { timeout: 60000 });
  assert.equal(job.state, "succeeded", JSON.stringify(job));
  return job;
}

describe("the dashboard in Chromium against a real agent and receiver", { timeout: 300000 }, () => {
  before(async () => {
    rmSync(ARTIFACTS, { recursive: true, force: true });
    mkdirSync(ARTIFACTS, { recursive: true });
    await world.startReceiver();
    // A real HTTP server for the webhook alert channel.
    hookServer = createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        try {
          hooks.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
        } catch {
          hooks.push({ unreadable: true });
        }
        res.end();
      });
    });
    await new Promise((r) => hookServer.listen(0, "127.0.0.1", r));
    const hookUrl = `http://127.0.0.1:${hookServer.address().port}/hook`;
    await world.startAgent(`[programs]\nceip = false\n[alerts.webhook]\nurl = "${hookUrl}"\nformat = "json"\n`);
    origin = world.agent.origin;
    browser = await chromium.launch({ executablePath: chromiumPath(), args: CHROMIUM_ARGS });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    page = watch(await context.newPage());
  });

  after(async () => {
    await browser?.close();
    hookServer?.close();
    world.cleanup();
  });

  test("a one-time link signs in to a clean URL, and the same link is refused the second time", async () => {
    const url = link();
    const resp = await page.goto(url);
    assert.equal(resp.status(), 200);
    await page.waitForURL(`${origin}/`);
    await page.waitForSelector('main[data-ready="overview"]');
    assert.deepEqual(await context.cookies(origin), [], "no cookie: the browser would send it to every local port");
    const kept = await page.evaluate(() => sessionStorage.getItem("callhome.session"));
    assert.match(kept ?? "", /^[0-9a-f]{64}$/, "the session is kept in this tab");

    const stranger = await browser.newContext();
    const other = await stranger.newPage();
    const again = await other.goto(url);
    assert.equal(again.status(), 403, "a used link is refused");
    assert.match(await other.textContent("main"), /callhome dashboard/);
    await other.goto(`${origin}/`);
    await other.waitForURL(`${origin}/ui/signin.html`);
    assert.match(await other.textContent("main"), /callhome dashboard/);
    await other.screenshot({ path: join(ARTIFACTS, "signin-light.png") });
    const refusedApi = await other.evaluate(async () => (await fetch("/api/v1/status")).status);
    assert.equal(refusedApi, 401, "the API too refuses a browser without a session");
    // The tray opens a page directly: the fragment survives the sign-in.
    await other.goto(`${link()}#/licenses`);
    await other.waitForURL(`${origin}/#/licenses`);
    await other.waitForSelector('main[data-ready="licenses"]');
    await stranger.close();
  });

  test("callhome dashboard's private sign-in page posts the code from its file", async () => {
    const runtime = join(world.dir, "runtime");
    mkdirSync(runtime, { mode: 0o700, recursive: true });
    const opened = join(world.dir, "opened.txt");
    const script = join(world.dir, "browser.sh");
    writeFileSync(script, `#!/bin/sh\nprintf '%s' "$1" > "${opened}"\n`);
    chmodSync(script, 0o755);
    const out = world.cli(["dashboard"], { BROWSER: script, XDG_RUNTIME_DIR: runtime });
    assert.equal(out.status, 0, out.stderr);
    await waitFor("the browser command to run", () => existsSync(opened));
    const file = readFileSync(opened, "utf8");
    assert.match(file, /^file:\/\/.*\/dashboard-\d+\.html$/, "the browser is given a file, not the code");
    const ctx = await browser.newContext();
    const tab = await ctx.newPage();
    await tab.goto(file);
    await tab.waitForURL(`${origin}/`);
    await tab.waitForSelector('main[data-ready="overview"]');
    // Signing out ends the session at the agent, and the tab is back at the way to sign in.
    const session = await tab.evaluate(() => sessionStorage.getItem("callhome.session"));
    await tab.click("#sign-out");
    await tab.waitForURL(`${origin}/ui/signin.html`);
    const after = await fetch(`${origin}/api/v1/status`, { headers: { "X-Callhome-Session": session } });
    assert.equal(after.status, 401, "the session ended");
    await ctx.close();
  });

  test("toggling CEIP in the page changes the API's answer", async () => {
    const ceip = async () => (await world.api("/api/v1/programs")).find((p) => p.name === "ceip");
    assert.equal((await ceip()).enabled, false, "the configuration starts with CEIP off");
    await open("#/programs");
    const sw = page.locator("#switch-ceip");
    assert.equal(await sw.isChecked(), false);
    await sw.focus();
    await page.keyboard.press("Space");
    await waitFor("GET /api/v1/programs to say CEIP is on", async () => (await ceip()).enabled === true);
    await page.locator("#programs-message", { hasText: "CEIP is on" }).waitFor();
    await open("#/overview");
    await open("#/programs");
    assert.equal(await page.locator("#switch-ceip").isChecked(), true, "the page shows the agent's state");
  });

  test("the preview's zip is the spooled file byte for byte, and the ledger records its SHA-256 after Upload now", async () => {
    await open("#/overview");
    await page.click("#collect-now");
    await page.locator("#job-message", { hasText: "Collected" }).waitFor({ timeout: 60000 });
    const bundle = (await world.api("/api/v1/bundles")).find((b) => b.program === "telemetry");
    assert.ok(bundle, "Collect now made a license-telemetry bundle");
    const manifest = await world.api(`/api/v1/bundles/${bundle.id}`);

    await open("#/preview");
    await page.click(`a:text-is("${bundle.id}")`);
    await page.waitForSelector(`main[data-ready="preview/${bundle.id}"]`);
    assert.equal(await page.locator("details.file").count(), manifest.files.length + 1, "every file and the manifest");
    assert.equal(await page.locator("text=matches the manifest").count(), manifest.files.length);
    assert.equal(await page.locator("text=does NOT match the manifest").count(), 0);
    assert.equal(await page.locator("#withdraw").count(), 0, "no withdraw for mandatory telemetry");
    const licensesJson = page.locator('details.file[data-name="licenses.json"] pre');
    assert.match(await licensesJson.textContent(), /\n {2}"licenses": \[/, "JSON is pretty-printed");

    await page.fill("#preview-search", "cad_pro");
    await page.locator("#search-result", { hasText: /\d+ match/ }).waitFor();
    assert.ok(await page.locator("details.file mark").count() > 0, "matches are highlighted");

    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download-zip")]);
    const downloaded = readFileSync(await download.path());
    const onDisk = readFileSync(world.spoolFile("telemetry", bundle.id));
    const sha = sha256(downloaded);
    assert.equal(sha, sha256(onDisk), "the downloaded zip is the spooled file");
    assert.ok(downloaded.equals(onDisk));
    assert.equal((await page.textContent("#zip-sha")).trim(), sha, "the SHA-256 shown is the file's");

    await open("#/overview");
    await page.click("#upload-now");
    await page.locator("#job-message", { hasText: "Upload done" }).waitFor({ timeout: 60000 });
    const sent = (await world.api("/api/v1/ledger")).find((r) => r.bundle === bundle.id && r.event === "sent");
    assert.ok(sent, "the ledger has the bundle as sent");
    assert.equal(sent.sha256, sha, "the ledger's SHA-256 is the previewed bytes'");

    await open("#/history");
    await page.locator("#sent", { hasText: sha }).waitFor();
    await page.click("#verify-chain");
    await page.locator("#verify-result", { hasText: "ledger ok" }).waitFor();
    assert.match(await page.textContent("#verify-result"), /signatures verified/);
  });

  test("an optional program's bundle can be withdrawn from the preview", async () => {
    await finishedJob("/api/v1/collect", { program: "call_home" });
    const bundle = (await world.api("/api/v1/bundles")).find((b) => b.program === "call_home");
    assert.ok(bundle, "a Call Home bundle is pending");
    await open(`#/preview/${encodeURIComponent(bundle.id)}`);
    await page.click("#withdraw");
    await page.click("#withdraw-yes");
    await page.waitForSelector('main[data-ready="preview"]');
    await waitFor("the bundle to leave the spool", async () => !(await world.api("/api/v1/bundles")).some((b) => b.id === bundle.id));
    const row = (await world.api("/api/v1/ledger")).find((r) => r.bundle === bundle.id);
    assert.equal(row?.event, "withdrawn", "the ledger records the withdrawal");
    assert.equal((await page.locator(`a:text-is("${bundle.id}")`).count()), 0);
  });

  test("the preview lists the quarantine, retries a bundle into the spool and purges a damaged one", async () => {
    // A Call Home bundle refused for good (as a 413 leaves it), and a damaged file.
    await finishedJob("/api/v1/collect", { program: "call_home" });
    const bundle = (await world.api("/api/v1/bundles")).find((b) => b.program === "call_home");
    const qdir = join(world.data, "quarantine");
    mkdirSync(qdir, { recursive: true });
    copyFileSync(world.spoolFile("call_home", bundle.id), join(qdir, bundle.id));
    writeFileSync(join(qdir, `${bundle.id}.reason`), "the receiver refused it for good (HTTP 413)\n");
    await world.api(`/api/v1/bundles/${encodeURIComponent(bundle.id)}`, { method: "DELETE" });
    const damaged = "upload_compliance_20260101T000000Z_dead.zip";
    writeFileSync(join(qdir, damaged), "not a zip");
    writeFileSync(join(qdir, `${damaged}.reason`), "found damaged at start-up\n");

    await open("#/overview"); // the previous test left the preview open: draw it anew
    await open("#/preview");
    const row = (id) => page.locator("#quarantine tr", { hasText: id });
    await row(bundle.id).waitFor();
    assert.match(await row(bundle.id).textContent(), /HTTP 413/, "says why");
    expected.add(`409 POST /api/v1/quarantine/${damaged}/retry`);
    await page.click(`button[data-action="retry"][data-id="${damaged}"]`);
    await page.locator("#quarantine-message", { hasText: "stays in quarantine" }).waitFor();
    await page.click(`button[data-action="retry"][data-id="${bundle.id}"]`);
    await page.locator("#quarantine-message", { hasText: "queued again" }).waitFor();
    assert.ok((await world.api("/api/v1/bundles")).some((b) => b.id === bundle.id), "back in the spool");
    await page.locator(`a:text-is("${bundle.id}")`).waitFor();
    await page.click(`button[data-action="purge"][data-id="${damaged}"]`);
    await page.click(`button[data-action="purge-yes"][data-id="${damaged}"]`);
    await page.locator("#quarantine-message", { hasText: "purged" }).waitFor();
    assert.deepEqual(await world.api("/api/v1/quarantine"), []);
    const purged = (await world.api("/api/v1/ledger")).find((r) => r.bundle === damaged);
    assert.equal(purged?.event, "purged", "the ledger records the purge");
  });

  test("the proxy form saves the URL and user, never shows a password, and forgets them", async () => {
    await open("#/settings");
    assert.equal(await page.inputValue("#proxy-password"), "", "write-only: nothing is filled in");
    await page.fill("#proxy-url", "http://127.0.0.1:3128");
    await page.fill("#proxy-user", "alice");
    await page.click("#proxy-save");
    await page.locator("#proxy-message", { hasText: "Proxy saved" }).waitFor();
    const saved = await world.api("/api/v1/proxy");
    assert.deepEqual([saved.url, saved.username, saved.origin], ["http://127.0.0.1:3128", "alice", "settings"]);
    assert.match(await page.textContent("#proxy-state"), /through http:\/\/127\.0\.0\.1:3128 as alice/);
    await page.click("#proxy-forget");
    await page.locator("#proxy-message", { hasText: "forgotten" }).waitFor();
    assert.equal((await world.api("/api/v1/proxy")).url, null, "the configuration's (none) applies again");
    assert.match(await page.textContent("#proxy-state"), /connect directly/);
  });

  test("the license chart draws each feature's usage against its licensed quantity", async () => {
    const rows = await world.api("/api/v1/usage?feature=cad_pro");
    assert.ok(rows.length > 1, "the debug-log fixture gives cad_pro hours");
    await open("#/licenses");
    const chart = page.locator('svg.chart[data-feature="cad_pro"]');
    assert.equal(await chart.locator("rect.bar").count(), rows.length, "one bar per hour");
    const peaks = await chart.locator("rect.bar").evaluateAll((els) => els.map((e) => [Number(e.dataset.peak), Number(e.getAttribute("height"))]));
    assert.deepEqual(peaks.map(([p]) => p), rows.map((r) => r.peak));
    assert.ok(peaks.some(([p, h]) => p > 0 && h > 0), "bars have height");
    assert.ok(peaks.every(([p, h]) => (p === 0) === (h === 0)));
    assert.equal(await chart.locator("line.limit").getAttribute("data-quantity"), "25", "acme.lic installs 25 cad_pro");
    const days = await page.locator("tr", { hasText: "cad_legacy" }).first().textContent();
    assert.match(days, /expired/);
  });

  test("Acknowledge on the overview turns callhome check from CRITICAL to OK", async () => {
    const before = world.cli(["check"]);
    assert.equal(before.status, 2, `the expired cad_legacy line makes check CRITICAL: ${before.stdout}`);
    const open_ = (await world.api("/api/v1/alerts")).filter((a) => !a.acknowledged);
    assert.ok(open_.some((a) => a.kind === "license-expired" && a.title.includes("cad_legacy")), JSON.stringify(open_));
    await open("#/overview");
    for (const a of open_) {
      await page.click(`#ack-${a.id}`);
      await page.locator(`#unack-${a.id}`).waitFor();
    }
    await page.locator("#alerts-message", { hasText: "acknowledged" }).waitFor();
    assert.ok((await world.api("/api/v1/alerts")).every((a) => a.acknowledged), "the API says so too");
    const after_ = world.cli(["check"]);
    assert.equal(after_.status, 0, after_.stdout);
    assert.match(after_.stdout, /^CALLHOME OK - .*alert\(s\) acknowledged/);
    // Undo brings it back.
    const expired = open_.find((a) => a.kind === "license-expired");
    await page.click(`#unack-${expired.id}`);
    await page.locator(`#ack-${expired.id}`).waitFor();
    assert.equal(world.cli(["check"]).status, 2);
    await page.click(`#ack-${expired.id}`);
    await page.locator(`#unack-${expired.id}`).waitFor();
    assert.equal(world.cli(["check"]).status, 0);
  });

  test("the notification switch turns desktop notifications off and on, and a test alert reaches the webhook", async () => {
    const enabled = async () => (await world.api("/api/v1/notifications")).enabled;
    assert.equal(await enabled(), true, "on by default");
    await open("#/settings");
    const sw = page.locator("#notifications");
    await waitFor("the switch to be usable", async () => !(await sw.isDisabled()));
    assert.equal(await sw.isChecked(), true);
    assert.equal(await page.locator("#notifications-message .bad").count(), 0, "no error box");
    await sw.click();
    await page.locator("#notifications-message", { hasText: "Desktop notifications off." }).waitFor();
    assert.equal(await enabled(), false, "the API's answer changed");
    assert.equal((await world.api("/api/v1/status")).notifications_enabled, false);
    await open("#/overview");
    await open("#/settings");
    await waitFor("the switch to load", async () => !(await sw.isDisabled()));
    assert.equal(await sw.isChecked(), false, "the page shows the agent's state");
    await sw.click();
    await waitFor("notifications on again", enabled);

    const tests = () => hooks.filter((b) => b.kind === "test").length;
    await page.click("#test-alert");
    await page.locator("#notifications-message", { hasText: "Test alert delivered on webhook." }).waitFor();
    assert.equal(tests(), 1, "the webhook server got one test alert");
    await page.locator('#alert-channels li[data-channel="webhook"]', { hasText: "last delivered" }).waitFor();
  });

  test("the overview follows changes made elsewhere, live", async () => {
    await open("#/overview");
    const words = (n) => `${n} ${n === 1 ? "bundle" : "bundles"}`;
    const shows = async () => (await page.textContent("#pending-count")).trim();
    const agrees = async () => (await shows()) === words((await world.api("/api/v1/status")).spool.pending);
    await waitFor("the overview to show the pending count", agrees);
    const before = await shows();
    // Changed through the API, not the page: only the event stream can tell the page.
    await finishedJob("/api/v1/collect", { program: "telemetry" });
    await waitFor("the overview to follow the new count without a reload", async () => (await shows()) !== before && agrees());
  });

  test("a server on another local port that the signed-in browser visits captures nothing the API accepts", async () => {
    const captured = [];
    const server = createServer((req, res) => {
      captured.push({ url: req.url, headers: req.headers });
      if (req.url !== "/") {
        res.statusCode = 404;
        res.end();
        return;
      }
      res.setHeader("content-type", "text/html");
      res.end(`<!doctype html><title>elsewhere</title><link rel="icon" href="/favicon.ico"><form id="f" method="POST"
        enctype="text/plain" action="${origin}/api/v1/collect"><input name="{}" value=""></form><script>f.submit()</script>`);
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    const pendingBefore = (await world.api("/api/v1/status")).spool.pending;
    const session = await page.evaluate(() => sessionStorage.getItem("callhome.session"));
    assert.ok(session, "the main tab is signed in");
    // A tab of its own in the signed-in browser (its refused request is expected, not watched).
    const tab = await context.newPage();
    try {
      const [resp] = await Promise.all([
        tab.waitForResponse((r) => r.url() === `${origin}/api/v1/collect`),
        tab.goto(`http://127.0.0.1:${server.address().port}/`),
      ]);
      assert.equal(resp.status(), 403, "the browser's own cross-site POST is refused by its Origin");
      assert.ok(!JSON.stringify(await resp.request().allHeaders()).includes(session), "and carries no session");
    } finally {
      await tab.close();
      server.close();
    }
    assert.ok(captured.length >= 1, "the other server was visited");
    for (const { url, headers } of captured) {
      assert.ok(!JSON.stringify(headers).includes(session), `the session reached the other server on ${url}`);
      // Replayed as a local attacker would, with every header it captured and same-origin ones.
      const replay = { ...headers, host: `127.0.0.1:${world.agent.port}`, origin, "sec-fetch-site": "same-origin" };
      for (const k of ["content-length", "connection", "transfer-encoding"]) delete replay[k];
      const read = await fetch(`${origin}/api/v1/status`, { headers: replay });
      assert.equal(read.status, 401, `a read replaying ${url}'s headers`);
      const change = await fetch(`${origin}/api/v1/programs/ceip`, {
        method: "PUT", headers: { ...replay, "content-type": "application/json" }, body: JSON.stringify({ enabled: true }),
      });
      assert.equal(change.status, 401, `a change replaying ${url}'s headers`);
    }
    assert.equal((await world.api("/api/v1/status")).spool.pending, pendingBefore, "nothing was collected");
  });

  test("an exemption granted at the receiver reaches the overview with the next upload", async () => {
    const { install_id } = await world.api("/api/v1/status");
    const until = new Date(Date.now() + 60 * 86400e3).toISOString().slice(0, 10);
    const g = world.receiverCli(["exemptions", "grant", "--install", install_id, "--until", until, "--reason", "audit agreed with the vendor"]);
    assert.equal(g.status, 0, g.stderr);
    await open("#/overview");
    await finishedJob("/api/v1/upload", { program: "telemetry" });
    await page.locator("#compliance-state", { hasText: "Exempt" }).waitFor();
    await page.locator("#days-left", { hasText: `Exempt until ${until}` }).waitFor();
    await page.locator("#exemption", { hasText: "audit agreed with the vendor" }).waitFor();
    assert.equal((await world.api("/api/v1/status")).compliance.state, "exempt");
  });

  test("every page passes axe-core in light and dark, and each is saved as a screenshot", async () => {
    await finishedJob("/api/v1/collect", {});
    const bundle = (await world.api("/api/v1/bundles")).find((b) => b.program === "telemetry");
    const violations = [];
    for (const scheme of ["light", "dark"]) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const name of Object.keys(PAGES)) {
        await open(`#/${name}`);
        assert.equal(await page.textContent("main h1"), PAGES[name]);
        violations.push(...await axeCheck(page, `${name} (${scheme})`));
        await page.screenshot({ path: join(ARTIFACTS, `${name}-${scheme}.png`), fullPage: true });
      }
      await open(`#/preview/${encodeURIComponent(bundle.id)}`);
      violations.push(...await axeCheck(page, `bundle preview (${scheme})`));
      await page.screenshot({ path: join(ARTIFACTS, `preview-bundle-${scheme}.png`), fullPage: false });
      await page.setViewportSize({ width: 390, height: 844 });
      await open("#/overview");
      violations.push(...await axeCheck(page, `overview, phone-sized (${scheme})`));
      await page.screenshot({ path: join(ARTIFACTS, `overview-phone-${scheme}.png`), fullPage: true });
      await page.setViewportSize({ width: 1280, height: 900 });

      const stranger = await browser.newContext({ colorScheme: scheme });
      const other = await stranger.newPage();
      await other.goto(`${origin}/`);
      await other.waitForURL(`${origin}/ui/signin.html`);
      violations.push(...await axeCheck(other, `sign-in page (${scheme})`));
      await other.goto(`${origin}/login?code=${"0".repeat(64)}`);
      violations.push(...await axeCheck(other, `refused link page (${scheme})`));
      await other.screenshot({ path: join(ARTIFACTS, `link-refused-${scheme}.png`) });
      await stranger.close();
    }
    writeFileSync(join(ARTIFACTS, "axe-violations.txt"), violations.join("\n") + "\n");
    assert.deepEqual(violations, [], "axe-core: serious or critical violations");
    assert.deepEqual(problems, [], "errors in the pages");
  });
});
