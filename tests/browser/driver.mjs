#!/usr/bin/env node
// Drive one real browser call: headless Debian Chromium (playwright-core) loads
// page/index.html (SIP.js 0.21 as ES modules; or page/legacy.html, the
// SIP.js 0.7 `SIP.UA` API, with `"page": "legacy.html"`) from a loopback HTTP server,
// registers over WebSocket, calls with the X-Platforma headers, and either
// hangs up itself after `hangupAfterMs` (BYE from the browser) or waits for
// the far end's BYE (`waitBye`). Prints one JSON object on stdout:
//   {ok, error, events, sent, received, media, console, chromium, elapsedMs}
// `events` are the page's state changes ({t, what, ...}); `sent` the SIP
// messages the browser wrote on the WebSocket, `received` those it read. Exit code 0 when the driver
// itself worked, whatever happened to the call; 1 on a driver failure (the
// JSON then has `error`).
//
// Usage: node driver.mjs '{"callee": "0215550100", "outboundId": "0215550199",
//                           "callRef": "ord-42", ...}'   (all keys optional)
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { FLAGS } from "./chromium.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const DEFAULTS = {
  wsServer: "ws://127.0.0.1:8088/ws",
  domain: "127.0.0.1",
  user: "2101",
  password: "bench-2101-webrtc",
  callee: "0215550100",
  outboundId: "0215550199",
  callRef: "browser-1",
  hangupAfterMs: 2000, // after "established"; ignored with waitBye
  waitBye: false, // wait for the far end to hang up instead
  answerTimeoutMs: 20000,
  endTimeoutMs: 20000,
  executablePath: "/usr/bin/chromium",
  page: "index.html", // "legacy.html": the same call with the SIP.js 0.7 SIP.UA API
};
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".map": "application/json" };
const ROOTS = {
  "/sip.js/": join(HERE, "node_modules/sip.js/lib"), // 0.21.x, ES modules
  "/legacy/": join(HERE, "node_modules/sip.js-legacy/dist"), // 0.7.8, global SIP
  "/": join(HERE, "page"),
};

function serve() {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const prefix = Object.keys(ROOTS).find((p) => path.startsWith(p));
    const root = ROOTS[prefix];
    const file = normalize(join(root, path.slice(prefix.length) || "index.html"));
    try {
      if (!file.startsWith(root + sep) || !statSync(file).isFile()) throw new Error("not found");
      res.writeHead(200, { "Content-Type": TYPES[extname(file)] || "application/octet-stream" });
      res.end(readFileSync(file));
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitEvent(page, names, timeoutMs) {
  await page.waitForFunction(
    (wanted) => window.c2d.events.some((e) => wanted.includes(e.what)),
    names,
    { timeout: timeoutMs, polling: 50 },
  );
  return page.evaluate((wanted) => window.c2d.events.find((e) => wanted.includes(e.what)).what, names);
}

// RTP counters once ICE + DTLS are up and some audio went out (or after maxMs).
async function waitMedia(page, maxMs) {
  const deadline = Date.now() + maxMs;
  for (;;) {
    const media = await page.evaluate(() => window.c2d.media());
    if ((media && media.connectionState === "connected" && media.packetsSent > 10) || Date.now() > deadline) {
      return media;
    }
    await sleep(100);
  }
}

// The outgoing call of a browser phone: INVITE with the headers, then hang up
// (or wait for the far end's BYE).
async function callOut(page, cfg, result) {
  await page.evaluate((c) => window.c2d.call(c), cfg);
  const outcome = await waitEvent(page, ["established", "rejected", "terminated"], cfg.answerTimeoutMs);
  if (outcome !== "established") {
    // Refused: the final response is reported just after "terminated".
    await waitEvent(page, ["rejected"], 2000).catch(() => {});
  } else {
    if (cfg.waitBye) {
      result.media = await waitMedia(page, 1500);
      await waitEvent(page, ["terminated"], cfg.endTimeoutMs);
    } else {
      await sleep(cfg.hangupAfterMs);
      result.media = await page.evaluate(() => window.c2d.media());
      await page.evaluate(() => window.c2d.hangup());
      await waitEvent(page, ["terminated"], cfg.endTimeoutMs);
    }
  }
}

async function main() {
  const cfg = { ...DEFAULTS, ...JSON.parse(process.argv[2] || "{}") };
  const started = Date.now();
  const result = { ok: false, error: null, events: [], sent: [], received: [], media: null, console: [] };
  const server = await serve();
  const userDataDir = mkdtempSync(join(tmpdir(), "c2d-chromium-"));
  let context = null;
  let page = null;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: cfg.executablePath,
      headless: true,
      args: FLAGS,
      permissions: ["microphone"],
    });
    result.chromium = context.browser() ? context.browser().version() : null;
    page = context.pages()[0] || (await context.newPage());
    page.on("console", (msg) => {
      if (msg.type() === "error" || msg.type() === "warning") result.console.push(`${msg.type()}: ${msg.text()}`);
    });
    page.on("pageerror", (err) => result.console.push("pageerror: " + err.message));
    const url = `http://127.0.0.1:${server.address().port}/${cfg.page}`;
    await page.goto(url);
    await page.waitForFunction(() => window.c2d && window.c2d.events.some((e) => e.what === "ready"), null, { timeout: 10000 });

    await page.evaluate((c) => window.c2d.register(c), cfg);
    if (cfg.answerIncoming) {
      // The agent's phone (C39): say "registered" on stdout, wait for the
      // call, answer it, talk talkMs, hang up.
      process.stdout.write(JSON.stringify({ registered: true }) + "\n");
      await waitEvent(page, ["incoming"], cfg.answerTimeoutMs);
      await page.evaluate(() => window.c2d.answer());
      await waitEvent(page, ["established"], 10000);
      result.media = await waitMedia(page, 3000);
      const ended = await waitEvent(page, ["terminated"], cfg.talkMs).catch(() => null);
      if (ended) throw new Error("the call ended before the agent hung up");
      result.mediaLater = await page.evaluate(() => window.c2d.media());
      await page.evaluate(() => window.c2d.hangup());
      await waitEvent(page, ["terminated"], cfg.endTimeoutMs);
    } else {
      await callOut(page, cfg, result);
    }
    await page.evaluate(() => window.c2d.unregister());
    await sleep(200); // let the un-REGISTER leave before the socket closes
    result.ok = true;
  } catch (err) {
    result.error = String(err && err.stack ? err.stack : err);
    if (page) {
      // Leave nothing behind in Asterisk: CANCEL or BYE what is still up.
      await page.evaluate(() => window.c2d && window.c2d.hangup()).catch(() => {});
      await sleep(300);
    }
  } finally {
    if (page) {
      try {
        result.events = await page.evaluate(() => window.c2d.events);
        result.sent = await page.evaluate(() => window.c2d.sent);
        result.received = await page.evaluate(() => window.c2d.received);
      } catch {
        /* the page is gone */
      }
    }
    if (context) await context.close().catch(() => {});
    server.close();
    rmSync(userDataDir, { recursive: true, force: true });
    result.elapsedMs = Date.now() - started;
  }
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exitCode = result.ok ? 0 : 1;
}

main();
