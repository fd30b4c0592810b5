// Real parts for the browser tests: the reference receiver over self-signed TLS, a real agent
// (`callhome run --headless`) on a temporary data directory with the license fixtures, the CLI,
// and Debian's Chromium. Every wait is a condition with a deadline, never a bare sleep.

import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const FIXTURES = join(ROOT, "tests", "fixtures", "licenses");

/** A binary from the environment (`CALLHOME_BIN`, `CALLHOME_RECEIVER_BIN`) or target/debug. */
export function binary(name) {
  const env = { callhome: "CALLHOME_BIN", "callhome-receiver": "CALLHOME_RECEIVER_BIN" }[name];
  const path = process.env[env] || join(ROOT, "target", "debug", name);
  if (!existsSync(path)) {
    throw new Error(`${path} does not exist: run \`cargo build --bins\` first, or set ${env} to the binary`);
  }
  return path;
}

/** The browser: $CHROMIUM, else Debian's /usr/bin/chromium (or another usual place). Never downloaded. */
export function chromiumPath() {
  if (process.env.CHROMIUM) {
    if (!existsSync(process.env.CHROMIUM)) throw new Error(`CHROMIUM=${process.env.CHROMIUM} does not exist`);
    return process.env.CHROMIUM;
  }
  const found = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/snap/bin/chromium"].find((p) => existsSync(p));
  if (!found) {
    throw new Error("no Chromium found: install Debian's chromium (scripts/deps does), or set CHROMIUM to a Chromium binary");
  }
  return found;
}

export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/** Polls `cond` (sync or async) until it gives a truthy value, which it returns. */
export async function waitFor(what, cond, { timeout = 20000, every = 50 } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for: ${what}${last ? ` (last error: ${last.message})` : ""}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export function sha256(buf) {
  return createHash("sha256").update(buf).digest("hex");
}

const children = new Set();
function own(child) {
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}
/** Stops every process this harness started (also on an unexpected exit). */
export function stopAll() {
  for (const c of children) c.kill("SIGKILL");
}
process.on("exit", stopAll);

/** A test folder: receiver, agent, configuration and data directory. */
export class World {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "callhome-browser-"));
    this.data = join(this.dir, "data");
    this.config = join(this.dir, "callhome.toml");
  }

  async startReceiver() {
    const child = own(spawn(binary("callhome-receiver"), [
      "serve", "--listen", "127.0.0.1:0", "--store", join(this.dir, "receiver-store"),
      "--tls-self-signed", "--ca-out", join(this.dir, "ca.pem"),
      "--signing-key", join(this.dir, "receiver-signing.pem"),
      "--public-key-out", join(this.dir, "receiver-public.pem"), "--open-enrolment",
    ], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, CALLHOME_LOG: "warn" } }));
    const line = await new Promise((res, rej) => {
      const rl = createInterface({ input: child.stdout });
      rl.once("line", (l) => { rl.close(); res(l); });
      child.once("exit", (code) => rej(new Error(`the receiver exited (${code}) before printing its address`)));
    });
    const url = line.split(/\s+/).find((w) => w.startsWith("https://"));
    if (!url) throw new Error(`no address in the receiver's first line: ${line}`);
    this.receiver = { child, url };
    return url;
  }

  /** Writes the configuration (receiver, fixtures, `extra` TOML) and starts the agent. */
  async startAgent(extra = "") {
    for (const f of ["acme.lic", "globex.lic", "acme-debug.log"]) copyFileSync(join(FIXTURES, f), join(this.dir, f));
    writeFileSync(this.config, [
      "[upload]",
      `endpoint = "${this.receiver.url}"`,
      'ca_file = "ca.pem"',
      'receipt_public_key = "receiver-public.pem"',
      // The test decides when to upload ("Upload now"), not the schedule.
      'first_upload_delay = "1h"',
      "[licenses]",
      'files = ["*.lic"]',
      'debug_logs = ["acme-debug.log"]',
      extra,
    ].join("\n") + "\n");
    const env = { ...process.env, CALLHOME_LOG: "info" };
    delete env.DO_NOT_TRACK;
    delete env.BROWSER;
    this.agentLog = join(this.dir, "agent.log");
    const log = openSync(this.agentLog, "w");
    const child = own(spawn(binary("callhome"), ["run", "--headless", "--config", this.config, "--data-dir", this.data],
      { stdio: ["ignore", "ignore", log], env }));
    const apiJson = join(this.data, "api.json");
    await waitFor("the agent to publish api.json", () => existsSync(apiJson), { timeout: 30000 });
    const loc = JSON.parse(readFileSync(apiJson, "utf8"));
    this.agent = { child, port: loc.port, origin: `http://127.0.0.1:${loc.port}` };
    this.token = readFileSync(join(this.data, "api-token"), "utf8").trim();
    return this.agent;
  }

  /** Runs the CLI on this world; returns {status, stdout, stderr}. */
  cli(args, env = {}) {
    const e = { ...process.env, ...env };
    delete e.DO_NOT_TRACK;
    const r = spawnSync(binary("callhome"), [...args, "--config", this.config, "--data-dir", this.data], { env: e, encoding: "utf8" });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** Runs an operator's command of the receiver on this world's store and signing key. */
  receiverCli(args) {
    const r = spawnSync(binary("callhome-receiver"), [...args, "--store", join(this.dir, "receiver-store"),
      "--signing-key", join(this.dir, "receiver-signing.pem")], { encoding: "utf8" });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** The API as a script sees it: with the bearer token, never the browser's cookie. */
  async api(path, { method = "GET", body } = {}) {
    const headers = { Authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(`${this.agent.origin}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  /** A pending bundle's file in the spool. */
  spoolFile(program, name) {
    const folder = { telemetry: "compliance", call_home: "callhome", ceip: "usage", events: "events" }[program];
    return join(this.data, "spool", folder, name);
  }

  cleanup() {
    stopAll();
    if (!process.env.KEEP_WORLD) rmSync(this.dir, { recursive: true, force: true });
  }
}
