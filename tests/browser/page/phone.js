// A minimal Click2Dial browser phone with the CURRENT SIP.js API (0.21.x):
// UserAgent + Registerer + Inviter. The two X-Platforma headers go in the
// Inviter's constructor options (`extraHeaders`): SIP.js ignores headers given
// only to invite() (field report C12, onsip/SIP.js #1068).
//
// The page exposes `window.c2d` for the test driver (tests/browser/driver.mjs):
//   await c2d.register({wsServer, domain, user, password})
//   await c2d.call({callee, outboundId, callRef})
//   await c2d.hangup()
//   c2d.events     every state change, in order: {t, what, ...}
//   c2d.sent       every SIP message the browser put on the WebSocket
//   c2d.received   every SIP message it got from it
//   await c2d.media()  the RTCPeerConnection's state and RTP counters
import { Inviter, Registerer, RegistererState, SessionState, UserAgent } from "./sip.js/index.js";

const t0 = performance.now();
const events = [];
const sent = [];
const received = [];
let ua = null;
let registerer = null;
let session = null;

function note(what, extra = {}) {
  events.push({ t: Math.round(performance.now() - t0), what, ...extra });
  document.getElementById("state").textContent = what;
}

// SPEC §1: call_ref is letters, digits and . - _ ~ : only; a longer value is
// cut to 230 characters. Check before sending (C14): an invalid value is
// refused here with a message instead of a 403 from the PBX, and nothing
// oversized ever reaches the SIP stack.
const CALL_REF_MAX = 230;
export function callRefHeader(ref) {
  if (ref === undefined || ref === null || ref === "") return null;
  if (!/^[A-Za-z0-9.\-_~:]+$/.test(ref)) {
    throw new Error("call_ref may contain only letters, digits and . - _ ~ :");
  }
  return ref.slice(0, CALL_REF_MAX);
}

// outbound_id: "random", 0 + 9 digits or 27 + 9 digits (SPEC §1).
export function outboundIdHeader(id) {
  if (id === undefined || id === null || id === "") return null;
  if (!/^(random|0[0-9]{9}|27[0-9]{9})$/.test(id)) {
    throw new Error("outbound_id must be random, 0 + 9 digits or 27 + 9 digits");
  }
  return id;
}

// C27: SIP.js copies unknown options silently; refuse keys this version
// does not know (legacy names such as wsServers, hackWssInTransport, ...).
function checkOptions(options) {
  const known = new Set(Object.keys(UserAgent.defaultOptions ? UserAgent.defaultOptions() : options));
  const unknown = Object.keys(options).filter((k) => !known.has(k));
  if (unknown.length) throw new Error("unknown SIP.js UserAgent options: " + unknown.join(", "));
}

async function register({ wsServer, domain, user, password }) {
  const options = {
    uri: UserAgent.makeURI(`sip:${user}@${domain}`),
    transportOptions: { server: wsServer },
    authorizationUsername: user,
    authorizationPassword: password,
    displayName: `Agent ${user}`,
    logLevel: "warn",
    sessionDescriptionHandlerFactoryOptions: {
      // Local bench: no STUN/TURN; production passes its iceServers here.
      peerConnectionConfiguration: { iceServers: [] },
    },
    delegate: {
      onDisconnect: (error) => note("disconnected", { error: error ? String(error) : null }),
      // The agent's phone: a click-to-dial call rings it first (field report C39).
      onInvite: (invitation) => incoming(invitation),
    },
  };
  checkOptions(options);
  ua = new UserAgent(options);
  // Keep a copy of every SIP message on the socket (the test checks the INVITE).
  await ua.start();
  const transport = ua.transport;
  const send = transport.send.bind(transport);
  transport.send = (message) => {
    sent.push(String(message));
    return send(message);
  };
  const onMessage = transport.onMessage;
  transport.onMessage = (message) => {
    received.push(String(message));
    if (onMessage) onMessage(message);
  };
  note("connected");
  registerer = new Registerer(ua, { expires: 300 });
  const done = new Promise((resolve, reject) => {
    registerer.stateChange.addListener((state) => {
      note("register:" + state);
      if (state === RegistererState.Registered) resolve();
      if (state === RegistererState.Unregistered || state === RegistererState.Terminated) {
        reject(new Error("registration failed: " + state));
      }
    });
  });
  await registerer.register({
    requestDelegate: {
      onReject: (response) => note("register-rejected", { code: response.message.statusCode }),
    },
  });
  await done;
  note("registered");
}

// Keep only one codec in an SDP offer (field report C33: a browser that
// offers only Opus): its payload types in the m=audio line, and only their
// rtpmap / fmtp / rtcp-fb lines.
function onlyCodec(name) {
  return (description) => {
    const lines = description.sdp.split("\r\n");
    const keep = new Set(lines
      .map((l) => l.match(/^a=rtpmap:(\d+) ([^/]+)\//))
      .filter((m) => m && m[2].toLowerCase() === name)
      .map((m) => m[1]));
    const out = lines.filter((l) => {
      const m = l.match(/^a=(rtpmap|fmtp|rtcp-fb):(\d+)/);
      return !m || keep.has(m[2]);
    }).map((l) => {
      if (!l.startsWith("m=audio ")) return l;
      const parts = l.split(" ");
      return parts.slice(0, 3).concat(parts.slice(3).filter((pt) => keep.has(pt))).join(" ");
    });
    description.sdp = out.join("\r\n");
    return Promise.resolve(description);
  };
}

// Note a session's states, and a BYE from the far end (remember who hung
// up: with a delegate.onBye, SIP.js leaves answering the BYE to us).
function follow(s) {
  s.stateChange.addListener((state) => {
    note("session:" + state);
    if (state === SessionState.Established) note("established");
    if (state === SessionState.Terminated) note("terminated");
  });
  s.delegate = {
    onBye: (bye) => {
      note("bye-received");
      bye.accept();
    },
  };
}

async function call({ callee, outboundId, callRef, domain, onlyCodecName }) {
  const headers = [];
  const out = outboundIdHeader(outboundId);
  if (out) headers.push(`X-Platforma-Outbound-ID: ${out}`);
  const ref = callRefHeader(callRef);
  if (ref) headers.push(`X-Platforma-Call-Ref: ${ref}`);
  const target = UserAgent.makeURI(`sip:${callee}@${domain}`);
  if (!target) throw new Error("bad target " + callee);
  session = new Inviter(ua, target, {
    extraHeaders: headers, // here, not in invite() (C12)
    sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } },
    sessionDescriptionHandlerModifiers: onlyCodecName ? [onlyCodec(onlyCodecName)] : [],
  });
  follow(session);
  await session.invite({
    requestDelegate: {
      onTrying: () => note("trying"),
      onProgress: (response) => note("progress", { code: response.message.statusCode }),
      onAccept: (response) => note("accepted", { code: response.message.statusCode }),
      onReject: (response) => note("rejected", {
        code: response.message.statusCode,
        reason: response.message.reasonPhrase,
      }),
    },
  });
  note("invite-sent");
}

// An incoming call (the agent leg of a REST call): noted, answered by answer().
let ringing = null;
function incoming(invitation) {
  ringing = invitation;
  session = invitation;
  note("incoming", { from: invitation.remoteIdentity.uri.user });
  follow(invitation);
}

async function answer() {
  if (!ringing) throw new Error("no incoming call");
  await ringing.accept({ sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } } });
  note("answered");
}

async function hangup() {
  if (!session) return;
  switch (session.state) {
    case SessionState.Initial:
    case SessionState.Establishing:
      await session.cancel();
      note("cancel-sent");
      break;
    case SessionState.Established:
      await session.bye();
      note("bye-sent");
      break;
    default:
      break;
  }
}

async function unregister() {
  if (registerer) {
    await registerer.unregister().catch(() => {});
  }
  if (ua) await ua.stop();
  note("stopped");
}

// RTP counters of the call's RTCPeerConnection: proves ICE + DTLS-SRTP came up.
async function media() {
  const pc = session && session.sessionDescriptionHandler && session.sessionDescriptionHandler.peerConnection;
  if (!pc) return null;
  const out = {
    connectionState: pc.connectionState,
    iceConnectionState: pc.iceConnectionState,
    bytesSent: 0,
    bytesReceived: 0,
    packetsSent: 0,
    codec: null,
  };
  const stats = await pc.getStats();
  stats.forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "audio") {
      out.bytesSent += s.bytesSent || 0;
      out.packetsSent += s.packetsSent || 0;
      if (s.codecId && stats.get(s.codecId)) out.codec = stats.get(s.codecId).mimeType;
    }
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      out.bytesReceived += s.bytesReceived || 0;
      out.audioEnergyReceived = (out.audioEnergyReceived || 0) + (s.totalAudioEnergy || 0);
    }
    if (s.type === "transport" && s.dtlsState) out.dtlsState = s.dtlsState;
  });
  return out;
}

window.c2d = { register, call, answer, hangup, unregister, media, events, sent, received, callRefHeader, outboundIdHeader };
note("ready");
