#!/usr/bin/env node
// A headless Chromium driven step by step over stdin/stdout, one JSON object
// per line, so that a Python test can interleave browser steps with REST
// calls, SIPp peers and Asterisk checks (tests/browser/remote.py).
//
// Request:  {"id": 1, "op": "fill", "args": ["#callee", "0215550100"], "page": "main"}
// Answer:   {"id": 1, "ok": true, "value": ...}  or  {"id": 1, "ok": false, "error": "..."}
//
// `op` is a method of playwright's Page (goto, fill, click, press,
// selectOption, waitForSelector, waitForFunction, textContent, inputValue,
// evaluate, screenshot, setViewportSize...), or one of:
//   reset       close every tab and the browser context; start a new, empty one
//   open        a new tab named `page` in the same browser context (same cookies)
//   waitUntil   [expression, timeoutMs]: evaluate the expression every 100 ms until
//               it is truthy (page.waitForFunction evaluates a string with eval()
//               inside the page, which a strict Content-Security-Policy refuses)
//   log         console errors/warnings, page errors, and CSP violations so far
//   wsFrames    every WebSocket frame of the page: {url, dir: "sent"|"received", text}
//   close       close the browser and exit
// Config (argv[2], JSON): {executablePath}.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";
import { FLAGS } from "./chromium.mjs";

const cfg = { executablePath: "/usr/bin/chromium", ...JSON.parse(process.argv[2] || "{}") };
const METHODS = new Set([
  "goto", "reload", "fill", "click", "press", "type", "focus", "selectOption", "check", "uncheck",
  "waitForSelector", "waitForFunction", "waitForTimeout", "textContent", "innerText", "inputValue",
  "getAttribute", "isVisible", "isDisabled", "evaluate", "screenshot", "setViewportSize", "title", "url",
]);

const log = [];
const frames = [];
const pages = new Map();

function watch(name, page) {
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") log.push(`${name}: ${msg.type()}: ${msg.text()}`);
  });
  page.on("pageerror", (err) => log.push(`${name}: pageerror: ${err.message}`));
  page.on("websocket", (ws) => {
    ws.on("framesent", (f) => frames.push({ page: name, url: ws.url(), dir: "sent", text: String(f.payload) }));
    ws.on("framereceived", (f) => frames.push({ page: name, url: ws.url(), dir: "received", text: String(f.payload) }));
  });
  pages.set(name, page);
}

const browser = await chromium.launch({ executablePath: cfg.executablePath, headless: true, args: FLAGS });
let context = null;

// A new, empty browser context (no cookies, no storage) with one tab "main".
async function reset() {
  if (context) await context.close().catch(() => {});
  pages.clear();
  log.length = 0;
  frames.length = 0;
  context = await browser.newContext({ permissions: ["microphone"], viewport: { width: 1100, height: 760 } });
  watch("main", await context.newPage());
}
await reset();

async function run(req) {
  const name = req.page || "main";
  const args = req.args || [];
  switch (req.op) {
    case "open":
      if (!pages.has(name)) watch(name, await context.newPage());
      return null;
    case "waitUntil": {
      const page = pages.get(name);
      const [expression, timeoutMs = 20000] = args;
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (await page.evaluate(expression)) return true;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${expression}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    case "log":
      return log;
    case "wsFrames":
      return frames;
    case "reset":
      await reset();
      return null;
    case "close":
      await browser.close().catch(() => {});
      return null;
    default: {
      const page = pages.get(name);
      if (!page) throw new Error(`no page ${name}`);
      if (!METHODS.has(req.op)) throw new Error(`unknown op ${req.op}`);
      const value = await page[req.op](...args);
      // JSHandles and Buffers do not travel: say what they were.
      if (value && typeof value === "object" && (value.asElement || Buffer.isBuffer(value))) return true;
      return value === undefined ? null : value;
    }
  }
}

process.stdout.write(JSON.stringify({ id: 0, ok: true, value: browser.version() }) + "\n");
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const req = JSON.parse(line);
  let answer;
  try {
    answer = { id: req.id, ok: true, value: await run(req) };
  } catch (err) {
    answer = { id: req.id, ok: false, error: String(err && err.message ? err.message : err) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
  if (req.op === "close") break;
}
await browser.close().catch(() => {});
process.exit(0);
