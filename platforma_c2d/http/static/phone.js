// The agent's browser phone (SPEC §13, docs/pages.md), on SIP.js 0.21
// (UserAgent / Registerer / Inviter / Invitation), served by the service.
//
// It registers the agent's extension over the PBX's WebSocket, dials with
// X-Platforma-Outbound-ID and X-Platforma-Call-Ref (put in the Inviter's
// options: SIP.js ignores headers given only to invite(), field report C12),
// answers the calls the REST API places for the agent, and shows each call's
// outcome as the API journalled it.
import { Invitation, Inviter, Registerer, RegistererState, SessionState, UserAgent } from "./vendor/sip.js/lib/index.js";
import { REASONS, STATES, api, clock, logoutButton, ruleChecker, session } from "./common.js";

const $ = (id) => document.getElementById(id);
let cfg = null;
let check = null;
let ua = null;
let registerer = null;
let current = null; // {session, direction, callee, startedAt, answeredAt, callId, rejectCode}
let timer = null;

function setState(text) {
  $("call-state").textContent = text;
}

function setButtons() {
  const s = current && current.session;
  const ringingIn = s instanceof Invitation && s.state === SessionState.Initial;
  const live = s && s.state !== SessionState.Terminated;
  $("answer").hidden = !ringingIn;
  $("decline").hidden = !ringingIn;
  $("hangup").disabled = !live || ringingIn;
  $("mute").disabled = !(s && s.state === SessionState.Established);
  $("dial").disabled = !(registerer && registerer.state === RegistererState.Registered) || Boolean(live);
}

function startTimer() {
  stopTimer();
  current.answeredAt = Date.now();
  const at = current.answeredAt;
  timer = setInterval(() => {
    $("timer").textContent = clock((Date.now() - at) / 1000);
  }, 250);
}

function stopTimer() {
  if (timer) clearInterval(timer);
  timer = null;
}

// ---- registration ---------------------------------------------------------

function sipDomain(wsUrl) {
  return cfg.sip.domain || new URL(wsUrl.replace(/^ws/, "http")).hostname;
}

async function register(ev) {
  ev.preventDefault();
  const ext = $("extension").value.trim();
  const wsUrl = $("ws-url").value;
  if (cfg.agents.length && !cfg.agents.includes(ext)) {
    $("reg-status").textContent = `This login may not act for extension ${ext}.`;
    return;
  }
  localStorage.setItem("c2d.extension", ext);
  localStorage.setItem("c2d.wsUrl", wsUrl);
  $("register").disabled = true;
  $("reg-status").textContent = "Registering…";
  ua = new UserAgent({
    uri: UserAgent.makeURI(`sip:${ext}@${sipDomain(wsUrl)}`),
    transportOptions: { server: wsUrl },
    authorizationUsername: ext,
    authorizationPassword: $("sip-password").value,
    displayName: `Agent ${ext}`,
    logLevel: "warn",
    sessionDescriptionHandlerFactoryOptions: {
      peerConnectionConfiguration: { iceServers: cfg.sip.ice_servers.map((u) => ({ urls: u })) },
    },
    delegate: {
      onInvite: incoming,
      onDisconnect: (error) => {
        $("reg-status").textContent = error ? `Connection to the PBX lost: ${error.message}` : "Disconnected";
      },
    },
  });
  try {
    await ua.start();
    registerer = new Registerer(ua, { expires: 300 });
    registerer.stateChange.addListener((state) => {
      const text = {
        [RegistererState.Registered]: `Registered as ${ext}`,
        [RegistererState.Unregistered]: "Not registered",
        [RegistererState.Terminated]: "Not registered",
      }[state];
      if (text) $("reg-status").textContent = text;
      $("unregister").disabled = state !== RegistererState.Registered;
      $("register").disabled = state === RegistererState.Registered;
      setButtons();
      if (state === RegistererState.Registered) $("callee").focus();
    });
    await registerer.register({
      requestDelegate: {
        onReject: (response) => {
          const code = response.message.statusCode;
          $("reg-status").textContent = `Registration refused: ${code} ${response.message.reasonPhrase}`;
          $("register").disabled = false;
        },
      },
    });
  } catch (err) {
    $("reg-status").textContent = `Cannot reach the PBX: ${err.message}`;
    $("register").disabled = false;
  }
}

async function unregister() {
  if (registerer) await registerer.unregister().catch(() => {});
  if (ua) await ua.stop().catch(() => {});
  registerer = null;
  ua = null;
  $("register").disabled = false;
  $("unregister").disabled = true;
  $("reg-status").textContent = "Not registered";
  setButtons();
}

// ---- placing a call -----------------------------------------------------

function fieldError(field, message) {
  const input = { callee: "callee", outbound_id: "outbound-id", call_ref: "call-ref" }[field];
  $(`${field}-error`).textContent = message || "";
  if (message) $(input).setAttribute("aria-invalid", "true");
  else $(input).removeAttribute("aria-invalid");
  return Boolean(message);
}

function checkDialForm() {
  const callee = $("callee").value;
  const outboundId = $("outbound-id").value;
  const callRef = $("call-ref").value;
  const bad = [
    fieldError("callee", check("callee", callee, { required: true })),
    fieldError("outbound_id", check("outbound_id", outboundId)),
    fieldError("call_ref", check("call_ref", callRef)),
  ];
  const first = ["callee", "outbound-id", "call-ref"][bad.indexOf(true)];
  if (first) {
    $(first).focus();
    return null;
  }
  // SPEC §1: the characters are checked over the whole value, then it is cut.
  return { callee, outboundId, callRef: Array.from(callRef).slice(0, cfg.rules.fields.call_ref.max_length).join("") };
}

async function dial(ev) {
  ev.preventDefault();
  if (!ua || (current && current.session.state !== SessionState.Terminated)) return;
  const req = checkDialForm();
  if (!req) return;
  const headers = [];
  if (req.outboundId) headers.push(`X-Platforma-Outbound-ID: ${req.outboundId}`);
  if (req.callRef) headers.push(`X-Platforma-Call-Ref: ${req.callRef}`);
  const target = UserAgent.makeURI(`sip:${req.callee}@${sipDomain($("ws-url").value)}`);
  const inviter = new Inviter(ua, target, {
    extraHeaders: headers,
    sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } },
  });
  begin(inviter, "out", req.callee, req.callRef);
  setState(`Calling ${req.callee}…`);
  try {
    await inviter.invite({
      requestDelegate: {
        onProgress: (response) => {
          if (response.message.statusCode === 180 || response.message.statusCode === 183) {
            setState(`Ringing ${req.callee}…`);
          }
        },
        onReject: (response) => {
          current.rejectCode = `${response.message.statusCode} ${response.message.reasonPhrase}`;
        },
      },
    });
  } catch (err) {
    setState(`Could not call: ${err.message}`);
  }
}

// ---- answering a call placed for this agent ---------------------------

async function incoming(invitation) {
  if (current && current.session.state !== SessionState.Terminated) {
    await invitation.reject({ statusCode: 486 }).catch(() => {});
    return;
  }
  const from = invitation.remoteIdentity.uri.user || "unknown";
  begin(invitation, "in", from, "");
  setState(`Incoming call: ${from}`);
  $("answer").focus();
  // The REST API placed it: show for whom and with which reference.
  const call = await findCall((c) => c.state === "dialing_agent" && c.origin !== "webrtc", 4000);
  if (call && current && current.session === invitation) {
    current.callId = call.id;
    current.callee = call.callee;
    $("call-peer").textContent = `For ${call.callee}` + (call.call_ref ? ` · ref ${call.call_ref}` : "") +
      ` · caller ID ${call.clid || call.outbound_id || "default"}`;
  }
}

async function answer() {
  const s = current && current.session;
  if (!(s instanceof Invitation) || s.state !== SessionState.Initial) return;
  await s.accept({ sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } } });
}

async function decline() {
  const s = current && current.session;
  if (s instanceof Invitation && s.state === SessionState.Initial) await s.reject({ statusCode: 486 });
}

// ---- the call, whichever way it came --------------------------------------

function begin(sipSession, direction, peer, callRef) {
  current = { session: sipSession, direction, callee: peer, callRef, startedAt: Date.now(), callId: null };
  $("outcome").textContent = "";
  $("timer").textContent = "0:00";
  $("mute").setAttribute("aria-pressed", "false");
  $("mute").textContent = "Mute";
  $("call-peer").textContent = direction === "out" ? `To ${peer}` + (callRef ? ` · ref ${callRef}` : "") : "";
  const mine = current;
  sipSession.stateChange.addListener((state) => {
    if (state === SessionState.Established) {
      attachAudio(sipSession);
      startTimer();
      setState(mine.direction === "out" ? `Connected to ${mine.callee}` : `Answered; calling ${mine.callee}…`);
      if (mine.direction === "in") followRestCall(mine);
    }
    if (state === SessionState.Terminated) {
      stopTimer();
      $("mute").setAttribute("aria-pressed", "false");
      $("mute").textContent = "Mute";
      setState("Call ended");
      showOutcome(mine);
    }
    setButtons();
  });
  sipSession.delegate = { onBye: (bye) => bye.accept() };
  setButtons();
}

function attachAudio(sipSession) {
  const pc = sipSession.sessionDescriptionHandler && sipSession.sessionDescriptionHandler.peerConnection;
  if (!pc) return;
  const stream = new MediaStream();
  pc.getReceivers().forEach((r) => r.track && stream.addTrack(r.track));
  $("remote-audio").srcObject = stream;
}

function toggleMute() {
  const s = current && current.session;
  const pc = s && s.sessionDescriptionHandler && s.sessionDescriptionHandler.peerConnection;
  if (!pc) return;
  const muted = $("mute").getAttribute("aria-pressed") !== "true";
  pc.getSenders().forEach((snd) => {
    if (snd.track) snd.track.enabled = !muted;
  });
  $("mute").setAttribute("aria-pressed", String(muted));
  $("mute").textContent = muted ? "Unmute" : "Mute";
}

async function hangup() {
  const s = current && current.session;
  if (!s) return;
  if (s.state === SessionState.Established) await s.bye().catch(() => {});
  else if (s instanceof Inviter && s.state !== SessionState.Terminated) await s.cancel().catch(() => {});
  else if (s instanceof Invitation && s.state === SessionState.Initial) await s.reject({ statusCode: 486 }).catch(() => {});
}

// The newest call of this agent that matches `pred`, created since the SIP
// call began; polls the list for up to `waitMs`.
async function findCall(pred, waitMs) {
  const ext = $("extension").value.trim();
  // A minute of slack for a browser clock that is not the server's; newest first.
  const since = new Date(current ? current.startedAt - 60000 : 0).toISOString();
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const q = `agent=${encodeURIComponent(ext)}&created_after=${encodeURIComponent(since)}&limit=20`;
      const page = await api(`/click2dial/calls?${q}`);
      const found = page.calls.find(pred);
      if (found) return found;
    } catch {
      /* the API may be briefly unreachable: try again */
    }
    if (Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, 400));
  }
}

// After the agent answered a REST call: say when the callee answers.
async function followRestCall(mine) {
  while (mine.callId && current === mine && mine.session.state === SessionState.Established) {
    try {
      const call = await api(`/click2dial/calls/${mine.callId}`);
      if (call.state === "connected") {
        setState(`Connected to ${call.callee}`);
        return;
      }
      if (call.state === "ended") return;
      setState(`Answered; ${STATES[call.state].toLowerCase()} ${call.callee}…`);
    } catch {
      /* keep trying while the call is up */
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

// The outcome as the service journalled it: reason and talk time.
async function showOutcome(mine) {
  const sip = mine.rejectCode ? ` (SIP ${mine.rejectCode})` : "";
  $("outcome").textContent = `Ended${sip}; asking the service why…`;
  let call = null;
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    if (mine.callId) {
      call = await api(`/click2dial/calls/${mine.callId}`).catch(() => null);
    } else {
      call = await findCall((c) => (mine.direction === "out" ? c.origin === "webrtc" && c.callee === mine.callee : true), 0);
      if (call) mine.callId = call.id;
    }
    if (call && call.state === "ended") break;
    await new Promise((r) => setTimeout(r, 500));
  }
  let text;
  if (call && call.state === "ended") {
    const talk = call.duration_s ? `, talk ${clock(call.duration_s)}` : "";
    text = `Ended: ${REASONS[call.reason] || call.reason} (${call.reason})${talk}${sip}`;
  } else {
    text = `Ended${sip}; the service has no outcome for this call yet.`;
  }
  if (current === mine) $("outcome").textContent = text;
  const item = document.createElement("li");
  const when = new Date(mine.startedAt).toLocaleTimeString();
  item.textContent = `${when} ${mine.direction === "out" ? "→" : "←"} ${mine.callee}: ${text.replace(/^Ended: /, "")}`;
  $("recent").prepend(item);
  while ($("recent").children.length > 10) $("recent").lastChild.remove();
}

// ---- start ----------------------------------------------------------------

function fillForms() {
  const params = new URLSearchParams(window.location.search);
  for (const url of cfg.sip.websocket_urls) {
    const opt = document.createElement("option");
    opt.value = opt.textContent = url;
    $("ws-url").append(opt);
  }
  const savedWs = localStorage.getItem("c2d.wsUrl");
  if (savedWs && cfg.sip.websocket_urls.includes(savedWs)) $("ws-url").value = savedWs;
  $("extension").value = localStorage.getItem("c2d.extension") || (cfg.agents.length === 1 ? cfg.agents[0] : "");
  // The numbers of the CLID pools (GET /click2dial/clids); with [clid]
  // allowed set, only those. A rested number stays usable when chosen.
  const choices = [["", `Default (${cfg.clids.default})`]];
  if (cfg.pools.length) choices.push(["random", "Random from the pool"]);
  const seen = new Set([""]);
  const add = (number, label) => {
    if (seen.has(number) || (cfg.clids.allowed.length && !cfg.clids.allowed.includes(number))) return;
    seen.add(number);
    choices.push([number, label]);
  };
  for (const pool of cfg.pools) {
    for (const n of pool.numbers) {
      const rested = n.rested_until ? `, rested until ${new Date(n.rested_until).toLocaleTimeString()}` : "";
      add(n.number, `${n.number} (${pool.name}${rested})`);
    }
  }
  for (const n of cfg.clids.allowed) add(n, n);
  for (const [value, label] of choices) {
    const opt = document.createElement("option");
    opt.value = value;
    opt.textContent = label;
    $("outbound-id").append(opt);
  }
  // A CRM opens …/phone/?callee=0215550100&call_ref=CRM-4711[&outbound_id=…]
  if (params.get("callee")) $("callee").value = params.get("callee");
  if (params.get("call_ref")) $("call-ref").value = params.get("call_ref");
  const wanted = params.get("outbound_id");
  if (wanted !== null && choices.some(([v]) => v === wanted)) $("outbound-id").value = wanted;
}

async function main() {
  logoutButton($("logout"));
  const [conf, rules] = await Promise.all([session(), api("/click2dial/rules")]);
  const clids = await api("/click2dial/clids");
  cfg = { ...conf, rules, pools: clids.pools };
  check = ruleChecker(rules);
  $("who").textContent = cfg.auth ? `Logged in as ${cfg.caller}` : "";
  $("logout").hidden = !cfg.auth;
  fillForms();
  $("app").hidden = false;
  $("register-form").addEventListener("submit", register);
  $("unregister").addEventListener("click", unregister);
  $("dial-form").addEventListener("submit", dial);
  $("answer").addEventListener("click", answer);
  $("decline").addEventListener("click", decline);
  $("mute").addEventListener("click", toggleMute);
  $("hangup").addEventListener("click", hangup);
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") hangup();
    if ((ev.key === "a" || ev.key === "A") && !$("answer").hidden && !(ev.target instanceof HTMLInputElement)) answer();
  });
  window.addEventListener("beforeunload", () => {
    if (registerer) registerer.unregister().catch(() => {});
  });
  ($("extension").value ? $("sip-password") : $("extension")).focus();
  document.body.dataset.ready = "true";
}

main().catch((err) => {
  setState(`The phone could not start: ${err.message}`);
});
