// The LEGACY SIP.js API (0.7.x, global SIP): new SIP.UA(...) and
// ua.invite(target, {extraHeaders}), as older integrations still ship it
// (docs/webrtc.md). In 0.7.x the headers given to ua.invite() do reach the
// wire. Same window.c2d interface as phone.js, for tests/browser/driver.mjs.
// New code uses phone.js (SIP.js 0.21: UserAgent / Registerer / Inviter).
(function () {
  "use strict";
  var t0 = performance.now();
  var events = [], sent = [], received = [];
  var ua = null, session = null, hangingUp = false;

  function note(what, extra) {
    var e = Object.assign({ t: Math.round(performance.now() - t0), what: what }, extra || {});
    events.push(e);
    document.getElementById("state").textContent = what;
  }

  function register(cfg) {
    return new Promise(function (resolve, reject) {
      ua = new SIP.UA({
        uri: cfg.user + "@" + cfg.domain,
        wsServers: [cfg.wsServer],
        authorizationUser: cfg.user,
        password: cfg.password,
        register: true,
        stunServers: [],
        iceCheckingTimeout: 500,
        traceSip: false,
        log: { builtinEnabled: false },
      });
      ua.on("connected", function () {
        note("connected");
        var tr = ua.transport;
        var send = tr.send.bind(tr);
        tr.send = function (msg) { sent.push(String(msg)); return send(msg); };
        var onMessage = tr.onMessage.bind(tr);
        tr.onMessage = function (e) { received.push(String(e.data)); return onMessage(e); };
      });
      ua.on("registered", function () { note("registered"); resolve(); });
      ua.on("registrationFailed", function (cause) {
        note("register-rejected", { cause: String(cause) });
        reject(new Error("registration failed: " + cause));
      });
    });
  }

  function call(cfg) {
    var headers = [];
    if (cfg.outboundId) headers.push("X-Platforma-Outbound-ID: " + cfg.outboundId);
    if (cfg.callRef) headers.push("X-Platforma-Call-Ref: " + cfg.callRef);
    note("session:Establishing");
    session = ua.invite("sip:" + cfg.callee + "@" + cfg.domain, {
      extraHeaders: headers,
      media: { constraints: { audio: true, video: false } },
    });
    session.on("progress", function (r) { note("progress", { code: r.status_code }); });
    session.on("accepted", function (r) {
      note("established");
      note("accepted", { code: r ? r.status_code : 200 });
    });
    session.on("failed", function (r, cause) {
      note("rejected", { code: r && r.status_code, reason: String(cause) });
    });
    // 0.7 emits "bye" for its own BYE too.
    session.on("bye", function () { if (!hangingUp) note("bye-received"); });
    session.on("terminated", function () { note("terminated"); });
    note("invite-sent");
  }

  function hangup() {
    if (!session) return;
    hangingUp = true;
    if (session.startTime) { session.bye(); note("bye-sent"); }
    else { session.cancel(); note("cancel-sent"); }
  }

  function unregister() {
    return new Promise(function (resolve) {
      if (!ua) return resolve();
      ua.once("unregistered", function () { resolve(); });
      ua.stop();
      setTimeout(resolve, 1000);
    }).then(function () { note("stopped"); });
  }

  function media() {
    var pc = session && session.mediaHandler && session.mediaHandler.peerConnection;
    if (!pc) return Promise.resolve(null);
    var out = { connectionState: pc.connectionState, iceConnectionState: pc.iceConnectionState,
                bytesSent: 0, bytesReceived: 0, packetsSent: 0, codec: null };
    return pc.getStats().then(function (stats) {
      stats.forEach(function (s) {
        if (s.type === "outbound-rtp" && s.kind === "audio") {
          out.bytesSent += s.bytesSent || 0;
          out.packetsSent += s.packetsSent || 0;
          if (s.codecId && stats.get(s.codecId)) out.codec = stats.get(s.codecId).mimeType;
        }
        if (s.type === "inbound-rtp" && s.kind === "audio") out.bytesReceived += s.bytesReceived || 0;
        if (s.type === "transport" && s.dtlsState) out.dtlsState = s.dtlsState;
      });
      return out;
    });
  }

  window.c2d = { register: register, call: function (c) { call(c); return Promise.resolve(); },
                 hangup: function () { hangup(); return Promise.resolve(); }, unregister: unregister,
                 media: media, events: events, sent: sent, received: received };
  note("ready");
})();
