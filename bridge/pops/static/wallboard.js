// The supervisors' wallboard: GET /api/queues once (which queues, and the figures now), then
// the pops websocket: hello, subscribe to each queue, and every `queue.stats` replaces that
// queue's figures. Agents and plain agents' tokens are refused (403, shown as such).
// Every value is rendered as text. Sign-out or a revoked token (4001/4003) wipes the board.
"use strict";

(() => {
  const TOKEN_KEY = "crm-bridge-wallboard-token";
  const $ = (id) => document.getElementById(id);
  let callbackTimer = null;
  const queues = new Map(); // queue -> {stats, at (ms when received)}
  let socket = null;
  let retry = 0;
  let retryTimer = null;
  let ticker = null;
  let stopped = false;

  function text(tag, value, className) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    node.textContent = value === null || value === undefined ? "" : String(value);
    return node;
  }
  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const m = Math.floor(s / 60);
    return (m >= 60 ? Math.floor(m / 60) + ":" + String(m % 60).padStart(2, "0") : String(m)) + ":" + String(s % 60).padStart(2, "0");
  }
  const PCT = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 0 });
  const CLOCK = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

  function setStatus(label, cls) {
    $("status").textContent = label;
    $("status").className = "status " + (cls || "");
  }

  function figure(label, value, cls) {
    const box = document.createElement("div");
    box.className = "fig " + (cls || "");
    box.appendChild(text("span", value, "value"));
    box.appendChild(text("span", label, "label"));
    return box;
  }

  function elapsed(entry) {
    return (Date.now() - entry.at) / 1000;
  }

  function render() {
    const tiles = $("queues");
    tiles.replaceChildren();
    const callRows = [];
    const agents = new Map();
    for (const [name, entry] of Array.from(queues.entries()).sort()) {
      const s = entry.stats;
      const tile = document.createElement("article");
      tile.className = "queue";
      tile.dataset.queue = name;
      tile.appendChild(text("h2", name));
      const waiting = Number(s.waiting) || 0;
      const longest = waiting ? (Number(s.longest_wait_s) || 0) + elapsed(entry) : 0;
      const top = document.createElement("div");
      top.className = "row big";
      top.appendChild(figure("waiting", waiting, waiting ? "alert w" : "w"));
      top.appendChild(figure("longest wait", waiting ? duration(longest) : "–", longest > 60 ? "alert lw" : "lw"));
      const sla = typeof s.sla_pct === "number" ? s.sla_pct : null;
      const slaCls = sla === null ? "" : sla >= 80 ? "good" : sla >= 60 ? "warn" : "alert";
      top.appendChild(figure("service level", sla === null ? "–" : PCT.format(sla / 100), "sla " + slaCls));
      tile.appendChild(top);
      const a = s.agents || {};
      const row = document.createElement("div");
      row.className = "row";
      row.appendChild(figure("available", a.available || 0, "available"));
      row.appendChild(figure("ringing", a.ringing || 0, "ringing"));
      row.appendChild(figure("talking", a.talking || 0, "talking"));
      row.appendChild(figure("wrap-up", a.wrapup || 0, "wrapup"));
      row.appendChild(figure("paused", a.paused || 0, "paused"));
      tile.appendChild(row);
      const day = document.createElement("div");
      day.className = "row small";
      day.appendChild(figure("answered today", s.answered || 0, "answered"));
      day.appendChild(figure("abandoned today", s.abandoned || 0, s.abandoned ? "alert abandoned" : "abandoned"));
      tile.appendChild(day);
      tiles.appendChild(tile);
      for (const c of s.calls || []) callRows.push([name, c, entry]);
      for (const m of s.members || []) if (!agents.has(m.device)) agents.set(m.device, [m, entry]);
    }
    const body = $("calls").tBodies[0];
    body.replaceChildren();
    for (const [queue, c, entry] of callRows) {
      const tr = body.insertRow();
      tr.dataset.callId = c.call_id;
      tr.appendChild(text("td", queue));
      tr.appendChild(text("td", c.customer || c.caller || "unknown"));
      tr.appendChild(text("td", c.agent || "–"));
      tr.appendChild(text("td", c.state, "st-" + c.state));
      const since = Date.parse(c.since);
      tr.appendChild(text("td", isNaN(since) ? "" : duration((Date.now() - since) / 1000), "num"));
    }
    $("no-calls").hidden = callRows.length > 0;
    const agentBody = $("agents").tBodies[0];
    agentBody.replaceChildren();
    for (const [m] of Array.from(agents.values()).sort((x, y) => String(x[0].name).localeCompare(String(y[0].name)))) {
      const tr = agentBody.insertRow();
      tr.dataset.device = m.device;
      tr.appendChild(text("td", m.name || m.agent || m.device));
      const state =
        m.state === "paused" && m.reason ? "paused · " + m.reason : m.state === "wrapup" ? "wrap-up" : m.state;
      tr.appendChild(text("td", state, "st-" + m.state));
      const since = Date.parse(m.since);
      tr.appendChild(text("td", isNaN(since) ? "" : duration((Date.now() - since) / 1000), "num"));
      tr.appendChild(text("td", m.calls_today, "num"));
    }
    $("clock").textContent = CLOCK.format(new Date());
  }

  // The callers who gave up (GET /agent/api/callbacks: every queue for a supervisor), oldest
  // first; "Call back" rings the supervisor's own phone, then dials the caller.
  async function loadCallbacks() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return;
    try {
      const resp = await fetch("/agent/api/callbacks", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
      if (!resp.ok || sessionStorage.getItem(TOKEN_KEY) !== token) return;
      const data = await resp.json();
      const body = $("callbacks").tBodies[0];
      body.replaceChildren();
      for (const c of (data.callbacks || []).slice(0, 100)) {
        const tr = body.insertRow();
        tr.dataset.callId = String(c.call_id);
        const since = Date.parse(c.started_at);
        tr.appendChild(text("td", isNaN(since) ? "" : duration((Date.now() - since) / 1000), "num"));
        const who = c.customer && c.customer.name ? c.customer.name + " · " : "";
        tr.appendChild(text("td", who + String(c.caller || "")));
        tr.appendChild(text("td", c.queue || ""));
        tr.appendChild(text("td", c.attempts, "num"));
        const cell = document.createElement("td");
        const button = text("button", "Call back", "callback");
        button.type = "button";
        button.addEventListener("click", () => callBack(c.call_id));
        cell.appendChild(button);
        tr.appendChild(cell);
      }
      $("no-callbacks").hidden = body.rows.length > 0;
    } catch (err) { /* offline: the list stays as it was */ }
  }

  async function callBack(callId) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return;
    const status = $("callback-status");
    try {
      const resp = await fetch("/agent/api/dial", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
        body: JSON.stringify({ callback_of: callId }),
      });
      const data = await resp.json().catch(() => ({}));
      status.textContent = resp.ok ? "Your phone rings: answer it to call back " + String(data.number || "")
        : "Not dialled: " + String(data.reason || resp.status);
    } catch (err) {
      status.textContent = "Not dialled: " + String(err);
    }
  }

  function forget(message) {
    stopped = true;
    clearTimeout(retryTimer);
    clearInterval(ticker);
    ticker = null;
    sessionStorage.removeItem(TOKEN_KEY);
    const old = socket;
    socket = null;
    if (old) { try { old.close(1000); } catch (err) { /* closed */ } }
    queues.clear();
    $("queues").replaceChildren();
    $("calls").tBodies[0].replaceChildren();
    $("agents").tBodies[0].replaceChildren();
    $("callbacks").tBodies[0].replaceChildren();
    $("callback-status").textContent = "";
    clearInterval(callbackTimer);
    $("lists").hidden = true;
    $("login").hidden = false;
    $("logout").hidden = true;
    $("sla-note").textContent = "";
    $("login-error").textContent = message;
    setStatus("signed out");
  }

  async function start() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return;
    let resp;
    try {
      resp = await fetch("/api/queues", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
    } catch (err) {
      return reconnectLater();
    }
    if (resp.status === 401) return forget("Signed out: your token is wrong or expired.");
    if (resp.status === 403) return forget("The wallboard is for supervisors and admins.");
    if (!resp.ok) return reconnectLater();
    const data = await resp.json();
    $("sla-note").textContent = "service level: answered within " + String(data.sla_s) + " s";
    for (const s of data.queues || []) queues.set(s.queue, { stats: s, at: Date.now() });
    $("login").hidden = true;
    $("logout").hidden = false;
    $("lists").hidden = false;
    render();
    if (!ticker) ticker = setInterval(render, 1000);
    loadCallbacks();
    clearInterval(callbackTimer);
    callbackTimer = setInterval(loadCallbacks, 15000);
    connect(token);
  }

  async function connect(token) {
    let config;
    try {
      config = await (await fetch("/agent/config.json", { cache: "no-store" })).json();
    } catch (err) {
      return reconnectLater();
    }
    if (stopped || sessionStorage.getItem(TOKEN_KEY) !== token) return;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const host = location.hostname.includes(":") ? "[" + location.hostname + "]" : location.hostname;
    const ws = new WebSocket(config.pops_url || scheme + host + ":" + config.pops_port + "/");
    socket = ws;
    ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "hello", token })));
    ws.addEventListener("message", (event) => {
      if (socket !== ws) return;
      let msg;
      try { msg = JSON.parse(event.data); } catch (err) { return; }
      if (!msg || typeof msg !== "object") return;
      if (msg.type === "welcome") {
        retry = 0;
        setStatus("live", "online");
        for (const queue of queues.keys()) ws.send(JSON.stringify({ type: "subscribe", queue }));
      } else if (msg.type === "queue.stats" && typeof msg.queue === "string") {
        queues.set(msg.queue, { stats: msg, at: Date.now() });
        document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
        render();
      }
    });
    ws.addEventListener("close", (event) => {
      if (socket !== ws) return;
      socket = null;
      if (event.code === 4003) return forget("Signed out: your access was revoked.");
      if (event.code === 4001) return forget("Signed out: your token is wrong or expired.");
      if (!stopped) reconnectLater();
    });
  }

  function reconnectLater() {
    setStatus("offline, reconnecting…", "offline");
    const delay = Math.min(30000, 500 * 2 ** retry) * (0.5 + Math.random() / 2);
    retry = Math.min(retry + 1, 6);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => { queues.clear(); start(); }, delay);
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
      start();
    });
    $("logout").addEventListener("click", () => forget("Signed out."));
    if (sessionStorage.getItem(TOKEN_KEY)) start();
  });
})();
