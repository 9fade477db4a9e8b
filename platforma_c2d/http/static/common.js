// Shared by the phone and the board (docs/pages.md): the page session
// (login form → HttpOnly cookie), JSON calls to the API, the input rules of
// SPEC §1 with the API's own messages, and words for states and reasons.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.error = body && body.error;
    this.details = (body && body.details) || {};
  }
}

/** GET (or another method) a JSON resource of the service; throws ApiError. */
export async function api(path, { method = "GET", body } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (resp.status === 204) return null;
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

const $ = (id) => document.getElementById(id);

function element(tag, attrs = {}, text = "") {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text) el.textContent = text;
  return el;
}

// The login form, built into the page's (empty) #login-section.
function loginForm(section) {
  const form = element("form", { id: "login" });
  form.append(
    element("label", { for: "token" }, "API token"),
    element("input", { id: "token", type: "password", autocomplete: "off", required: "" }),
    element("button", { type: "submit" }, "Log in"),
    element("p", { id: "login-error", class: "error", role: "alert" }),
  );
  section.replaceChildren(element("h2", { id: "login-title" }, "Log in"), form);
  return form;
}

/**
 * Show the login form until a page session exists, then resolve with the
 * pages' configuration (GET /click2dial/pages/config). The token is posted
 * once, in a JSON body, and never kept by the page.
 */
export async function session() {
  if ((await api("/click2dial/pages/session")).active) return api("/click2dial/pages/config");
  const form = loginForm($("login-section"));
  $("login-section").hidden = false;
  $("token").focus();
  return new Promise((resolve) => {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      $("login-error").textContent = "";
      try {
        await api("/click2dial/pages/session", { method: "POST", body: { token: $("token").value } });
        $("token").value = "";
        $("login-section").hidden = true;
        resolve(await api("/click2dial/pages/config"));
      } catch (err) {
        $("login-error").textContent = err.status === 401 ? "Unknown token." : `Login failed: ${err.message}`;
        $("token").select();
      }
    });
  });
}

/** Wire the "Log out" button: end the page session and show the login form again. */
export function logoutButton(button) {
  button.addEventListener("click", async () => {
    await api("/click2dial/pages/session", { method: "DELETE" }).catch(() => {});
    window.location.reload();
  });
}

/** Python's ascii() of a string: how the API quotes a refused value. */
export function pyAscii(text) {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (ch === "\\" || ch === quote) out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (cp < 0x20 || (cp >= 0x7f && cp <= 0xff)) out += "\\x" + cp.toString(16).padStart(2, "0");
    else if (cp > 0xffff) out += "\\U" + cp.toString(16).padStart(8, "0");
    else if (cp > 0xff) out += "\\u" + cp.toString(16).padStart(4, "0");
    else out += ch;
  }
  return out + quote;
}

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m));
}

/**
 * A checker of SPEC §1 from GET /click2dial/rules: check(field, value)
 * returns null when the value is accepted, else the API's message for it.
 * An empty value is "required" (callee) or "not given" (the others).
 */
export function ruleChecker(rules) {
  const M = rules.messages;
  const show = (value) => {
    const chars = Array.from(value);
    if (chars.length <= M.value_shown_max) return pyAscii(value);
    return fill(M.value_cut, { shown: pyAscii(chars.slice(0, M.value_shown_max).join("")), length: chars.length });
  };
  return function check(field, value, { required = false } = {}) {
    const rule = rules.fields[field];
    if (value === "") return required ? fill(M.required, { formats: rule.formats }) : null;
    if (field === "call_ref" || field === "contact_ref") {
      const chars = Array.from(value);
      const at = chars.findIndex((c) => !new RegExp(rule.pattern).test(c));
      if (at < 0) return null;
      return fill(M.invalid_character, { char: pyAscii(chars[at]), position: at + 1, value: show(value), formats: rule.formats });
    }
    return new RegExp(rule.pattern).test(value) ? null : fill(M.invalid_value, { value: show(value), formats: rule.formats });
  };
}

// Every call state (calls/model.py State), in its order, with its label.
export const STATES = {
  dialing_agent: "Ringing the agent",
  dialing_callee: "Ringing the callee",
  connected: "Connected",
  ended: "Ended",
};

export const REASONS = {
  completed: "Completed",
  cancelled: "Cancelled",
  agent_no_answer: "Agent did not answer",
  agent_busy: "Agent busy",
  agent_unavailable: "Agent unavailable",
  callee_no_answer: "No answer",
  callee_busy: "Busy",
  callee_unavailable: "Callee unreachable",
  rejected: "Rejected",
  failed: "Failed",
};

/** "m:ss" (or "h:mm:ss") of a number of seconds. */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}
