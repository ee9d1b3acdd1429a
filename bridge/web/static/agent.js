// The agent page: token login, the pop websocket, call cards, dispositions.
// Every value from the server is rendered with textContent (via text()): never as HTML.
//
// Forgetting: on sign-out, a rejected token (API 401, websocket close 4001) or revoked
// access (close 4003: token rotated or agent disabled) the page removes every call card
// from the DOM, drops every call object and the token from memory and storage, and says
// why. Nothing holds a pop message after its card is gone (listeners keep only the call id).
// The disposition form appears only once this agent answered the call or took it by
// transfer: the bridge refuses a filing from anyone else (403).
"use strict";

(() => {
  const TOKEN_KEY = "crm-bridge-token";
  const REVOKED = "Signed out: your access was revoked.";
  const REJECTED = "Signed out: your token is wrong or expired.";
  const $ = (id) => document.getElementById(id);
  const calls = new Map(); // call_id -> {root}
  let socket = null;
  let me = null; // this agent's id, from the welcome
  let retry = 0;
  let retryTimer = null;
  let stopped = false;

  function text(tag, value, className) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    node.textContent = value === null || value === undefined ? "" : show(value);
    return node;
  }

  function show(value) {
    if (typeof value === "string") return value;
    if (typeof value === "number" || typeof value === "boolean") return String(value);
    return JSON.stringify(value);
  }

  // ISO timestamps from the bridge shown in the agent's own locale and time zone; anything
  // that does not parse as one is shown as the text it is.
  const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;
  function when(value) {
    if (typeof value !== "string" || !ISO_TIME.test(value)) return value;
    const date = new Date(value);
    return isNaN(date.getTime()) ? value : date.toLocaleString();
  }

  function setStatus(label, cls) {
    const status = $("status");
    status.textContent = label;
    status.className = "status " + (cls || "");
  }

  function table(rows, columns) {
    const t = document.createElement("table");
    const head = t.createTHead().insertRow();
    for (const [, label] of columns) head.appendChild(text("th", label));
    const body = t.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      for (const [key] of columns) {
        tr.appendChild(text("td", key.endsWith("_at") ? when(row[key]) : row[key]));
      }
    }
    return t;
  }

  function section(parent, title, rows, columns) {
    if (!Array.isArray(rows) || rows.length === 0) return;
    parent.appendChild(text("h3", title));
    parent.appendChild(table(rows, columns));
  }

  function renderCustomer(box, customer) {
    box.replaceChildren();
    if (!customer) {
      box.appendChild(text("p", "Unknown caller", "unknown"));
      return;
    }
    box.appendChild(text("h2", customer.name, "customer-name"));
    const tags = document.createElement("p");
    tags.className = "tags";
    for (const tag of customer.tags || []) tags.appendChild(text("span", tag));
    box.appendChild(tags);
    if (customer.restricted) {
      box.appendChild(text("p", "Another agent's customer: details hidden.", "restricted"));
    }
    const last = customer.last_outcome;
    if (last) {
      const bits = [last.disposition || last.outcome || "", when(last.at) || ""].filter(Boolean);
      box.appendChild(text("p", "Last outcome: " + bits.join(" · "), "last-outcome"));
    }
    const attrs = customer.attributes || {};
    const attrRows = Object.keys(attrs).map((k) => ({ key: k, value: attrs[k] }));
    section(box, "Details", attrRows, [["key", "Field"], ["value", "Value"]]);
    section(box, "Recent orders", customer.orders, [
      ["ordered_at", "Date"], ["reference", "Ref"], ["product", "Product"],
      ["amount", "Amount"], ["currency", ""], ["status", "Status"],
    ]);
    section(box, "Contracts", customer.contracts, [
      ["kind", "Kind"], ["reference", "Ref"], ["status", "Status"], ["stage", "Stage"],
      ["progress_pct", "Progress %"], ["paid_amount", "Paid"], ["total_amount", "Total"],
      ["due_at", "Due"],
    ]);
    section(box, "Marketing", customer.marketing, [
      ["occurred_at", "Date"], ["campaign", "Campaign"], ["channel", "Channel"],
      ["coupon_code", "Coupon"], ["status", "Status"],
    ]);
    section(box, "Service history", customer.history, [
      ["occurred_at", "Date"], ["kind", "Kind"], ["agent_id", "Agent"], ["summary", "Summary"],
      ["outcome", "Outcome"], ["disposition", "Disposition"], ["notes", "Notes"],
    ]);
  }

  function callFor(msg) {
    const callId = msg.call_id;
    let entry = calls.get(callId);
    if (entry) return entry;
    const root = $("call-template").content.firstElementChild.cloneNode(true);
    root.dataset.callId = callId;
    root.querySelector(".disposition").addEventListener("submit", (event) => {
      event.preventDefault();
      saveDisposition(callId, event.target);
    });
    $("calls").prepend(root);
    entry = { root };
    calls.set(msg.call_id, entry);
    $("empty").hidden = true;
    return entry;
  }

  function setState(entry, state, label) {
    entry.root.dataset.state = state;
    entry.root.querySelector(".state").textContent = label;
  }

  function onCallMessage(msg) {
    if (typeof msg.call_id !== "string") return;
    const entry = callFor(msg);
    const root = entry.root;
    switch (msg.type) {
      case "call.ringing":
        root.querySelector(".caller-name").textContent = show(msg.caller_name || "");
        root.querySelector(".caller").textContent = show(msg.caller || "");
        root.querySelector(".queue").textContent = msg.queue ? "queue " + show(msg.queue) : "";
        renderCustomer(root.querySelector(".customer"), msg.customer);
        if (!root.dataset.state || root.dataset.state === "retracted") setState(entry, "ringing", "ringing");
        break;
      case "call.dialing": // this agent's own call out: the dialled number's customer
        root.querySelector(".caller-name").textContent = "";
        root.querySelector(".caller").textContent = "calling " + show(msg.caller || "");
        root.querySelector(".queue").textContent = "";
        renderCustomer(root.querySelector(".customer"), msg.customer);
        if (!root.dataset.state) setState(entry, "dialing", "dialing");
        break;
      case "call.answered":
        setState(entry, "answered", "answered by " + show(msg.agent || "?"));
        if (me !== null && msg.agent === me) offerDisposition(root);
        break;
      case "call.retracted":
        setState(entry, "retracted", "stopped ringing (" + show(msg.reason || "") + ")");
        break;
      case "call.transferred":
        setState(entry, "transferred", "transferred to " + show(msg.agent || "?"));
        if (me !== null && msg.agent === me) offerDisposition(root);
        break;
      case "call.ended":
        setState(entry, "ended", "ended · " + show(msg.duration_s) + " s, talk " + show(msg.talk_s) + " s");
        break;
    }
  }

  function offerDisposition(root) {
    root.querySelector(".disposition").hidden = false;
  }

  // Remove every customer value from the page and from memory, then show the sign-in form.
  function forget(message) {
    stopped = true;
    clearTimeout(retryTimer);
    retryTimer = null;
    sessionStorage.removeItem(TOKEN_KEY);
    me = null;
    const old = socket;
    socket = null;
    if (old) {
      try { old.close(1000); } catch (err) { /* already closed */ }
    }
    calls.clear();
    $("calls").replaceChildren();
    $("empty").hidden = true;
    showLogin(message);
  }

  async function saveDisposition(callId, form) {
    const status = form.querySelector(".saved");
    const choice = form.querySelector("input[name=disposition]:checked");
    const body = { disposition: choice ? choice.value : null, notes: form.elements.notes.value };
    status.textContent = "saving…";
    try {
      const resp = await fetch("/agent/api/calls/" + encodeURIComponent(callId) + "/disposition", {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY),
        },
        body: JSON.stringify(body),
      });
      if (resp.status === 401) return forget(REJECTED);
      const data = await resp.json().catch(() => ({}));
      status.textContent = resp.ok ? "saved" : "not saved: " + show(data.reason || resp.status);
      form.dataset.saved = resp.ok ? "yes" : "no";
    } catch (err) {
      status.textContent = "not saved: " + show(String(err));
      form.dataset.saved = "no";
    }
  }

  async function connect() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return showLogin("");
    let config;
    try {
      config = await (await fetch("/agent/config.json", { cache: "no-store" })).json();
    } catch (err) {
      return reconnectLater();
    }
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const host = location.hostname.includes(":") ? "[" + location.hostname + "]" : location.hostname;
    const url = config.pops_url || scheme + host + ":" + config.pops_port + "/";
    if (stopped || sessionStorage.getItem(TOKEN_KEY) !== token) return;
    setStatus("connecting…");
    const ws = new WebSocket(url);
    socket = ws;
    ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "hello", token })));
    ws.addEventListener("message", (event) => {
      if (socket !== ws) return; // a socket this page already let go of
      let msg;
      try { msg = JSON.parse(event.data); } catch (err) { return; }
      if (!msg || typeof msg !== "object") return;
      if (msg.type === "welcome") {
        retry = 0;
        me = typeof msg.agent === "string" ? msg.agent : null;
        $("login").hidden = true;
        $("logout").hidden = false;
        $("who").textContent = "agent " + show(msg.agent);
        setStatus("online", "online");
        if (calls.size === 0) $("empty").hidden = false;
      } else if (msg.type && msg.type.startsWith("call.")) {
        onCallMessage(msg);
      }
    });
    ws.addEventListener("close", (event) => {
      if (socket !== ws) return;
      socket = null;
      if (event.code === 4003) return forget(REVOKED);
      if (event.code === 4001) return forget(REJECTED);
      if (!stopped) reconnectLater();
    });
  }

  function reconnectLater() {
    setStatus("offline, reconnecting…", "offline");
    const delay = Math.min(30000, 500 * 2 ** retry) * (0.5 + Math.random() / 2);
    retry = Math.min(retry + 1, 6);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }

  function showLogin(error) {
    $("login").hidden = false;
    $("logout").hidden = true;
    $("who").textContent = "";
    $("login-error").textContent = error;
    setStatus("signed out");
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("token").value = "";
      $("login-error").textContent = "";
      stopped = false;
      retry = 0;
      connect();
    });
    $("logout").addEventListener("click", () => forget("Signed out."));
    if (sessionStorage.getItem(TOKEN_KEY)) connect();
  });
})();
