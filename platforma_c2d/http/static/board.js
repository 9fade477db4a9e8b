// The supervisors' board (SPEC §13, docs/pages.md): calls up now by agent
// and state, today's outcomes, answer rate by caller ID, and outcomes per
// hour, kept up to date from the event stream (GET /click2dial/events,
// Server-Sent Events; the page session cookie authenticates it). Where the
// service has no event stream, the board polls the call list instead.
import { REASONS, STATES, api, clock, logoutButton, session } from "./common.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
// The states in the order a call goes through them: the keys of STATES.
const RANK = Object.fromEntries(Object.keys(STATES).map((state, i) => [state, i]));
const HOURS = 8;
const PAGE = 200;
const MAX_PAGES = 25;
const POLL_MS = 1000;
const EVENT_TYPES = Object.keys(STATES).map((state) => `call.${state}`);
// Outcomes grouped for the chart.
const GROUPS = {
  completed: "completed",
  callee_no_answer: "no_answer",
  agent_no_answer: "no_answer",
  callee_busy: "busy",
  agent_busy: "busy",
  callee_unavailable: "unreachable",
  agent_unavailable: "unreachable",
  rejected: "unreachable",
  failed: "unreachable",
  cancelled: "cancelled",
};
const GROUP_NAMES = { completed: "Completed", no_answer: "No answer", busy: "Busy", unreachable: "Unreachable / failed", cancelled: "Cancelled" };

const calls = new Map();
let cutoff = 0;
let dirty = false;

/** Keep the newest view of a call: a late or repeated update never moves it back. */
function upsert(call) {
  const known = calls.get(call.id);
  if (known && RANK[known.state] > RANK[call.state]) return;
  calls.set(call.id, call);
  dirty = true;
}

function recentCalls() {
  return `/click2dial/calls?limit=${PAGE}&created_after=${encodeURIComponent(new Date(cutoff).toISOString())}`;
}

// The calls placed since the cutoff, newest first, page by page (cursor).
async function loadRecent() {
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page++) {
    const data = await api(recentCalls() + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""));
    data.calls.forEach(upsert);
    cursor = data.next_cursor;
    if (!cursor) return;
  }
}

// ---- live feed ---------------------------------------------------------------

function follow(lastEventId) {
  if (lastEventId === null || lastEventId === undefined || !window.EventSource) {
    poll();
    return;
  }
  const source = new EventSource(`/click2dial/events?after=${lastEventId}`);
  const onEvent = (msg) => {
    try {
      const ev = JSON.parse(msg.data);
      if (ev && ev.call) upsert(ev.call);
    } catch {
      /* not an event of ours */
    }
  };
  source.addEventListener("message", onEvent);
  EVENT_TYPES.forEach((t) => source.addEventListener(t, onEvent));
  source.addEventListener("open", () => setFeed("live: event stream"));
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      // Refused (401 after the session ended, 404 or 503): fall back to polling.
      source.close();
      poll();
    } else {
      setFeed("event stream interrupted; reconnecting…");
    }
  });
}

async function poll() {
  setFeed("live: polling every second");
  for (;;) {
    try {
      const data = await api(recentCalls());
      data.calls.forEach(upsert);
      const seen = new Set(data.calls.map((c) => c.id));
      // A live call that fell off the first page: read it on its own.
      for (const c of calls.values()) {
        if (c.state !== "ended" && !seen.has(c.id)) upsert(await api(`/click2dial/calls/${c.id}`));
      }
      setFeed("live: polling every second");
    } catch (err) {
      if (err.status === 401) {
        setFeed("session ended: reload to log in again");
        return;
      }
      setFeed(`cannot reach the service (${err.message}); retrying`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

function setFeed(text) {
  $("feed").textContent = text;
}

// ---- rendering -------------------------------------------------------------

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.append(td);
  return td;
}

function stateBadge(td, state) {
  const span = document.createElement("span");
  span.className = `state state-${state}`;
  span.textContent = STATES[state] || state;
  td.append(span);
}

function renderLive(now) {
  const live = [...calls.values()].filter((c) => c.state !== "ended");
  live.sort((a, b) => a.agent.localeCompare(b.agent) || RANK[a.state] - RANK[b.state]);
  const body = $("live-calls").tBodies[0];
  body.replaceChildren();
  for (const c of live) {
    const tr = document.createElement("tr");
    tr.dataset.callId = c.id;
    tr.dataset.state = c.state;
    cell(tr, c.agent);
    stateBadge(cell(tr, ""), c.state);
    cell(tr, c.callee);
    cell(tr, c.clid || c.outbound_id || "");
    cell(tr, c.call_ref || "");
    cell(tr, c.origin);
    const since = Date.parse(c.state === "connected" && c.answered_at ? c.answered_at : c.created_at);
    cell(tr, clock((now - since) / 1000), "num");
    body.append(tr);
  }
  $("live-empty").hidden = live.length > 0;
  const counters = $("counters");
  counters.replaceChildren();
  for (const state of Object.keys(STATES).filter((s) => s !== "ended")) {
    const n = live.filter((c) => c.state === state).length;
    const div = document.createElement("div");
    div.className = "counter";
    div.dataset.state = state;
    const b = document.createElement("b");
    b.textContent = String(n);
    div.append(b, STATES[state]);
    counters.append(div);
  }
}

function today(c) {
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  return Date.parse(c.created_at) >= midnight.getTime();
}

function renderOutcomes(ended) {
  const byReason = new Map();
  for (const c of ended) byReason.set(c.reason, (byReason.get(c.reason) || 0) + 1);
  const body = $("outcomes").tBodies[0];
  body.replaceChildren();
  const rows = [...byReason.entries()].sort((a, b) => b[1] - a[1]);
  for (const [reason, n] of rows) {
    const tr = document.createElement("tr");
    tr.dataset.reason = reason;
    cell(tr, REASONS[reason] || reason);
    cell(tr, String(n), "num");
    cell(tr, `${Math.round((100 * n) / ended.length)}%`, "num");
    body.append(tr);
  }
  if (!rows.length) cell(body.insertRow(), "No call has ended today.", "empty").colSpan = 3;
}

function bar(rate) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "bar");
  svg.setAttribute("viewBox", "0 0 100 10");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${Math.round(rate * 100)}% answered`);
  const r = document.createElementNS(SVG, "rect");
  r.setAttribute("width", String(rate * 100));
  r.setAttribute("height", "10");
  svg.append(r);
  return svg;
}

function renderClids(ended) {
  const by = new Map();
  for (const c of ended) {
    const key = c.clid || "(none)";
    const s = by.get(key) || { calls: 0, answered: 0 };
    s.calls += 1;
    if (c.answered_at) s.answered += 1;
    by.set(key, s);
  }
  const body = $("clid-rates").tBodies[0];
  body.replaceChildren();
  const rows = [...by.entries()].sort((a, b) => b[1].calls - a[1].calls);
  for (const [clid, s] of rows) {
    const tr = document.createElement("tr");
    tr.dataset.clid = clid;
    cell(tr, clid);
    cell(tr, String(s.calls), "num");
    cell(tr, String(s.answered), "num");
    cell(tr, `${Math.round((100 * s.answered) / s.calls)}%`, "num");
    cell(tr, "").append(bar(s.answered / s.calls));
    body.append(tr);
  }
  if (!rows.length) cell(body.insertRow(), "No call has ended today.", "empty").colSpan = 5;
}

// Stacked bars: one per hour, one segment per outcome group.
function renderChart(now) {
  const hourMs = 3600 * 1000;
  const end = Math.floor(now / hourMs) * hourMs + hourMs;
  const start = end - HOURS * hourMs;
  const buckets = Array.from({ length: HOURS }, () => ({}));
  for (const c of calls.values()) {
    if (c.state !== "ended" || !c.ended_at) continue;
    const t = Date.parse(c.ended_at);
    if (t < start || t >= end) continue;
    const b = buckets[Math.floor((t - start) / hourMs)];
    const g = GROUPS[c.reason] || "unreachable";
    b[g] = (b[g] || 0) + 1;
  }
  const W = 760, H = 200, L = 34, B = 22, T = 8;
  const max = Math.max(1, ...buckets.map((b) => Object.values(b).reduce((x, y) => x + y, 0)));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", "100%");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Outcomes per hour over the last ${HOURS} hours`);
  svg.id = "chart-svg";
  const text = (x, y, s, anchor) => {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", String(x));
    t.setAttribute("y", String(y));
    t.setAttribute("text-anchor", anchor);
    t.textContent = s;
    svg.append(t);
  };
  const axis = document.createElementNS(SVG, "line");
  axis.setAttribute("class", "axis");
  axis.setAttribute("x1", String(L));
  axis.setAttribute("x2", String(W));
  axis.setAttribute("y1", String(H - B));
  axis.setAttribute("y2", String(H - B));
  svg.append(axis);
  text(L - 6, T + 8, String(max), "end");
  text(L - 6, H - B, "0", "end");
  const slot = (W - L) / HOURS;
  buckets.forEach((b, i) => {
    let y = H - B;
    for (const g of Object.keys(GROUP_NAMES)) {
      const n = b[g] || 0;
      if (!n) continue;
      const h = ((H - B - T) * n) / max;
      y -= h;
      const r = document.createElementNS(SVG, "rect");
      r.setAttribute("class", `seg-${g}`);
      r.setAttribute("x", String(L + i * slot + slot * 0.15));
      r.setAttribute("width", String(slot * 0.7));
      r.setAttribute("y", String(y));
      r.setAttribute("height", String(h));
      r.dataset.group = g;
      r.dataset.count = String(n);
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${GROUP_NAMES[g]}: ${n}`;
      r.append(title);
      svg.append(r);
    }
    const hour = new Date(start + i * hourMs);
    text(L + i * slot + slot / 2, H - 6, `${String(hour.getHours()).padStart(2, "0")}:00`, "middle");
  });
  $("chart").replaceChildren(svg);
}

function renderEnded(ended) {
  const body = $("ended-calls").tBodies[0];
  body.replaceChildren();
  const last = [...ended].sort((a, b) => Date.parse(b.ended_at) - Date.parse(a.ended_at)).slice(0, 8);
  for (const c of last) {
    const tr = document.createElement("tr");
    tr.dataset.callId = c.id;
    tr.dataset.reason = c.reason;
    cell(tr, new Date(c.ended_at).toLocaleTimeString());
    cell(tr, c.agent);
    cell(tr, c.callee);
    cell(tr, c.clid || "");
    cell(tr, c.call_ref || "");
    cell(tr, REASONS[c.reason] || c.reason);
    cell(tr, clock(c.duration_s || 0), "num");
    body.append(tr);
  }
}

function render() {
  const now = Date.now();
  renderLive(now);
  if (!dirty) return;
  dirty = false;
  const ended = [...calls.values()].filter((c) => c.state === "ended" && today(c));
  renderOutcomes(ended);
  renderClids(ended);
  renderChart(now);
  renderEnded(ended);
}

function legend() {
  for (const [g, name] of Object.entries(GROUP_NAMES)) {
    const span = document.createElement("span");
    const key = document.createElement("i");
    key.className = `key-${g}`;
    span.append(key, name);
    $("legend").append(span);
  }
}

async function main() {
  logoutButton($("logout"));
  const cfg = await session();
  $("who").textContent = cfg.auth ? `Logged in as ${cfg.caller}` : "";
  $("logout").hidden = !cfg.auth;
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  cutoff = Math.min(midnight.getTime(), Date.now() - HOURS * 3600 * 1000);
  $("app").hidden = false;
  legend();
  await loadRecent();
  dirty = true;
  render();
  setInterval(render, 500);
  follow(cfg.last_event_id);
  document.body.dataset.ready = "true";
}

main().catch((err) => setFeed(`The board could not start: ${err.message}`));
