// The agent's desk: token login, the pop websocket, the caller's card, alerting, a bounded
// history, dispositions, pause/available, "create customer" for unknown callers.
// Every value from the server is rendered with textContent (via text()): never as HTML.
//
// Forgetting: on sign-out, a rejected token (API 401, websocket close 4001) or revoked
// access (close 4003: token rotated or agent disabled) the page removes every call card
// and the "my calls today" list from the DOM, drops every call object, stops the ring, the
// title flash and any notification, drops the token from memory and storage, and says why.
// Nothing holds a pop message after its card is gone: call objects keep ids, states and
// times only (customer values live in the DOM), listeners keep only the call id, and one
// page-wide ticker walks the call map instead of one timer per card.
// The disposition form appears only once this agent answered the call or took it by
// transfer: the bridge refuses a filing from anyone else (403).
// Click-to-call: every phone number on the desk is a button (POST /agent/api/dial: the
// agent's own phone rings first, then the number is dialled); the "Call back" list shows the
// callers who gave up (GET /agent/api/callbacks), each with one button that calls back.
"use strict";

(() => {
  const TOKEN_KEY = "crm-bridge-token";
  const REVOKED = "Signed out: your access was revoked.";
  const REJECTED = "Signed out: your token is wrong or expired.";
  const MAX_CALLS = 20; // calls kept on the page: the current one and the last ones, collapsed
  const BASE_TITLE = document.title;
  const $ = (id) => document.getElementById(id);
  const calls = new Map(); // call_id -> {root, state, since, ringAt, answeredAt, mine, owed}
  let config = { tag_colors: {}, customer_url: "" };
  let socket = null;
  let me = null; // this agent's id, from the welcome
  let retry = 0;
  let retryTimer = null;
  let stopped = false;
  let ticker = null;
  let wrapupSince = null;

  // --- text and formatting (the browser's locale, via Intl) ---------------------------------

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

  const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;
  function asDate(value) {
    if (typeof value !== "string" || !ISO_TIME.test(value)) return null;
    const date = new Date(value);
    return isNaN(date.getTime()) ? null : date;
  }
  const DAY = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
  const CLOCK = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
  function day(value) {
    const date = asDate(value);
    return date ? DAY.format(date) : value;
  }
  function clock(value) {
    const date = value instanceof Date ? value : asDate(value);
    return date ? CLOCK.format(date) : "";
  }
  function money(amount, currency) {
    const n = typeof amount === "number" ? amount : Number(amount);
    if (amount === null || amount === undefined || amount === "" || !isFinite(n)) return "";
    if (typeof currency === "string" && /^[A-Z]{3}$/.test(currency)) {
      try {
        return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(n);
      } catch (err) { /* an unknown currency code: plain number below */ }
    }
    return new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 }).format(n);
  }
  function number(value) {
    return typeof value === "number" ? new Intl.NumberFormat().format(value) : show(value);
  }
  const LABELS = {
    follow_up: "Follow-up", resolved: "Resolved", complaint: "Complaint",
    answered: "Answered", abandoned: "Abandoned", unanswered: "Missed",
    answered_elsewhere: "answered by a colleague", caller_gone: "caller hung up",
    no_answer: "not answered", transferred: "transferred",
  };
  function label(value) {
    if (typeof value !== "string" || value === "") return "";
    if (LABELS[value]) return LABELS[value];
    const plain = value.replace(/[_-]+/g, " ");
    return plain.charAt(0).toUpperCase() + plain.slice(1);
  }
  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = String(s % 60).padStart(2, "0");
    return h ? h + ":" + String(m).padStart(2, "0") + ":" + rest : m + ":" + rest;
  }

  function setStatus(labelText, cls) {
    const status = $("status");
    status.textContent = labelText;
    status.className = "status " + (cls || "");
  }

  // --- the customer's card ----------------------------------------------------------------

  function badge(tag) {
    const node = text("span", tag, "badge");
    const color = config.tag_colors && config.tag_colors[tag];
    if (typeof color === "string") {
      node.style.backgroundColor = color; // CSSOM, allowed by style-src 'self'
      node.classList.add("coloured");
    }
    return node;
  }

  function table(rows, columns, className) {
    const t = document.createElement("table");
    if (className) t.className = className;
    const head = t.createTHead().insertRow();
    for (const [, title] of columns) head.appendChild(text("th", title));
    const body = t.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      for (const [key, , format] of columns) {
        const cell = text("td", format ? format(row) : row[key]);
        if (key === "status") cell.className = "st st-" + String(row[key] || "").replace(/\W/g, "");
        tr.appendChild(cell);
      }
    }
    return t;
  }

  const CLOSED = new Set(["delivered", "returned", "cancelled", "canceled", "closed", "refunded"]);

  function renderOrders(box, orders) {
    if (!Array.isArray(orders) || orders.length === 0) return;
    const open = orders.filter((o) => !CLOSED.has(String(o.status)));
    const done = orders.filter((o) => CLOSED.has(String(o.status)));
    box.appendChild(text("h3", open.length ? "Orders · " + open.length + " open" : "Orders"));
    box.appendChild(table(open.concat(done), [
      ["ordered_at", "Date", (r) => day(r.ordered_at)],
      ["reference", "Ref"],
      ["product", "Product"],
      ["amount", "Amount", (r) => money(r.amount, r.currency)],
      ["status", "Status", (r) => label(r.status)],
    ], "orders"));
  }

  function renderContracts(box, contracts, currency) {
    if (!Array.isArray(contracts) || contracts.length === 0) return;
    box.appendChild(text("h3", "Contracts"));
    for (const c of contracts) {
      const row = document.createElement("div");
      row.className = "contract";
      const title = [label(c.kind), c.reference, label(c.status)].filter(Boolean).join(" · ");
      row.appendChild(text("span", title, "contract-title"));
      const pct = Math.max(0, Math.min(100, Number(c.progress_pct) || 0));
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.setAttribute("role", "progressbar");
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", "100");
      bar.setAttribute("aria-valuenow", String(pct));
      const fill = document.createElement("div");
      fill.className = "fill";
      fill.style.width = pct + "%";
      bar.appendChild(fill);
      row.appendChild(bar);
      const stage = typeof c.stage === "string" && c.stage
        ? c.stage.replace(/ paid$/, "")
        : new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 0 })
          .format(pct / 100);
      row.appendChild(text("span", stage, "stage"));
      const paid = money(c.paid_amount, currency);
      const total = money(c.total_amount, currency);
      if (paid || total) row.appendChild(text("span", paid + " of " + total, "paid"));
      if (c.due_at) row.appendChild(text("span", "ends " + day(c.due_at), "due"));
      box.appendChild(row);
    }
  }

  function renderContacts(box, history) {
    if (!Array.isArray(history) || history.length === 0) return;
    box.appendChild(text("h3", "Last contacts"));
    const list = document.createElement("ol");
    list.className = "contacts";
    for (const h of history.slice(0, 3)) {
      const item = document.createElement("li");
      const head = [day(h.occurred_at), label(h.kind), h.agent_id ? "agent " + show(h.agent_id) : ""]
        .filter(Boolean).join(" · ");
      item.appendChild(text("span", head, "contact-head"));
      const outcome = label(h.disposition) || label(h.outcome);
      if (outcome) {
        const tag = text("span", outcome, "outcome");
        tag.dataset.outcome = String(h.disposition || h.outcome || "");
        item.appendChild(tag);
      }
      if (h.summary) item.appendChild(text("span", h.summary, "summary"));
      if (h.notes) item.appendChild(text("q", h.notes, "notes"));
      list.appendChild(item);
    }
    box.appendChild(list);
  }

  function renderDetails(box, attributes) {
    const keys = Object.keys(attributes || {});
    if (keys.length === 0) return;
    const dl = document.createElement("dl");
    dl.className = "details";
    for (const key of keys) {
      dl.appendChild(text("dt", label(key)));
      dl.appendChild(text("dd", number(attributes[key])));
    }
    box.appendChild(dl);
  }

  function renderMarketing(box, marketing) {
    if (!Array.isArray(marketing) || marketing.length === 0) return;
    box.appendChild(text("h3", "Marketing"));
    box.appendChild(table(marketing, [
      ["occurred_at", "Date", (r) => day(r.occurred_at)],
      ["campaign", "Campaign"],
      ["channel", "Channel", (r) => label(r.channel)],
      ["coupon_code", "Coupon"],
      ["status", "Status", (r) => label(r.status)],
    ], "marketing"));
  }

  function crmLink(id) {
    const template = config.customer_url;
    if (typeof template !== "string" || !/^https?:\/\//.test(template) || !template.includes("{id}")) {
      return null;
    }
    const a = text("a", "Open in CRM ↗", "crm-link");
    a.href = template.split("{id}").join(encodeURIComponent(String(id)));
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }

  function renderKnown(box, customer) {
    const head = document.createElement("div");
    head.className = "who-line";
    head.appendChild(text("h2", customer.name, "customer-name"));
    const tags = document.createElement("p");
    tags.className = "tags";
    for (const tag of customer.tags || []) tags.appendChild(badge(tag));
    head.appendChild(tags);
    box.appendChild(head);
    const meta = document.createElement("p");
    meta.className = "meta";
    meta.appendChild(text("span", customer.owner ? "Owner: agent " + show(customer.owner) : "No owner", "owner"));
    const last = customer.last_outcome;
    if (last && (last.disposition || last.outcome)) {
      meta.appendChild(text("span", "Last: " + [label(last.disposition || last.outcome), day(last.at)]
        .filter(Boolean).join(", "), "last-outcome"));
    }
    const link = crmLink(customer.id);
    if (link) meta.appendChild(link);
    if (!customer.restricted && typeof customer.id === "string" && customer.id) {
      const edit = text("button", "Edit", "edit-customer");
      edit.type = "button";
      const id = customer.id; // the listener holds the id only: sign-out must leave no value
      edit.addEventListener("click", (event) => openEdit(event.target.closest(".customer"), id));
      meta.appendChild(edit);
    }
    box.appendChild(meta);
    if (customer.restricted) {
      box.appendChild(text("p", "Another agent's customer: details hidden.", "restricted"));
    }
    const currency = (customer.orders || []).map((o) => o.currency).find(Boolean);
    const grid = document.createElement("div");
    grid.className = "card-grid";
    const left = document.createElement("div");
    const right = document.createElement("div");
    renderOrders(left, customer.orders);
    renderContracts(left, customer.contracts, currency);
    renderContacts(right, customer.history);
    if (Object.keys(customer.attributes || {}).length) right.appendChild(text("h3", "Details"));
    renderDetails(right, customer.attributes);
    renderMarketing(left, customer.marketing);
    grid.append(left, right);
    box.appendChild(grid);
  }

  // Correcting a known customer's name and tags (PATCH; the bridge checks [permissions]).
  // Listeners hold the customer id only and read the card's current values from the page,
  // so nothing of the customer outlives the card when the page forgets.
  function openEdit(box, id) {
    if (!box || box.querySelector("form.edit")) return;
    const form = document.createElement("form");
    form.className = "edit";
    const name = document.createElement("input");
    name.name = "name";
    name.required = true;
    name.maxLength = 200;
    name.value = box.querySelector(".customer-name").textContent;
    name.setAttribute("aria-label", "Customer name");
    const tags = document.createElement("input");
    tags.name = "tags";
    tags.maxLength = 400;
    tags.value = Array.from(box.querySelectorAll(".tags .badge"), (b) => b.textContent).join(", ");
    tags.placeholder = "tags, separated by commas";
    tags.setAttribute("aria-label", "Tags");
    const save = text("button", "Save", "save-edit");
    save.type = "submit";
    const cancel = text("button", "Cancel", "cancel-edit");
    cancel.type = "button";
    cancel.addEventListener("click", (event) => event.target.closest("form").remove());
    form.append(name, tags, save, cancel, text("span", "", "edit-result"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      saveEdit(event.target.closest(".customer"), id, event.target);
    });
    box.querySelector(".meta").after(form);
    name.focus();
  }

  async function saveEdit(box, id, form) {
    const result = form.querySelector(".edit-result");
    const body = {
      name: form.elements.name.value,
      tags: form.elements.tags.value.split(",").map((t) => t.trim()).filter(Boolean),
    };
    result.textContent = "saving…";
    try {
      const resp = await fetch("/agent/api/customers/" + encodeURIComponent(id), {
        method: "PATCH",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) },
        body: JSON.stringify(body),
      });
      if (resp.status === 401) return forget(REJECTED);
      const data = await resp.json().catch(() => ({}));
      if (!box.isConnected) return; // forgotten meanwhile
      if (!resp.ok) {
        result.textContent = (resp.status === 403 ? "not allowed: " : "not saved: ") + show(data.reason || resp.status);
        form.dataset.saved = "no";
        return;
      }
      box.querySelector(".customer-name").textContent = show(data.name);
      const badges = box.querySelector(".tags");
      badges.replaceChildren();
      for (const tag of data.tags || []) badges.appendChild(badge(tag));
      form.remove();
      box.appendChild(text("p", "Saved in the CRM.", "created"));
      box.dataset.edited = "yes";
    } catch (err) {
      result.textContent = "not saved: " + show(String(err));
      form.dataset.saved = "no";
    }
  }

  function renderUnknown(box, callId, caller) {
    const wrap = document.createElement("div");
    wrap.className = "unknown";
    const title = document.createElement("div");
    title.className = "who-line";
    title.appendChild(text("h2", "Unknown caller", "unknown-title"));
    title.appendChild(text("span", show(caller || ""), "unknown-number"));
    wrap.appendChild(title);
    const dialable = typeof caller === "string" && /^\+?[0-9]{5,20}$/.test(caller);
    if (!dialable) {
      wrap.appendChild(text("p", "The number is withheld: nothing to save it under."));
      box.appendChild(wrap);
      return;
    }
    wrap.appendChild(text("p", "Not in the CRM yet. Save the caller so the next call shows this card."));
    const form = document.createElement("form");
    form.className = "create";
    const name = document.createElement("input");
    name.name = "name";
    name.required = true;
    name.maxLength = 200;
    name.placeholder = "Customer name";
    name.setAttribute("aria-label", "Customer name");
    const tags = document.createElement("input");
    tags.name = "tags";
    tags.maxLength = 400;
    tags.placeholder = "tags, e.g. vip, wholesale";
    tags.setAttribute("aria-label", "Tags");
    const button = text("button", "Create customer");
    button.type = "submit";
    const result = text("span", "", "create-result");
    result.setAttribute("role", "status");
    form.append(name, tags, button, result);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      createCustomer(callId, event.target);
    });
    wrap.appendChild(form);
    box.appendChild(wrap);
  }

  function renderCustomer(box, customer, callId, caller) {
    box.replaceChildren();
    if (!customer) renderUnknown(box, callId, caller);
    else renderKnown(box, customer);
  }

  async function createCustomer(callId, form) {
    const entry = calls.get(callId);
    if (!entry) return;
    const result = form.querySelector(".create-result");
    const tags = form.elements.tags.value.split(",").map((t) => t.trim()).filter(Boolean);
    const body = {
      name: form.elements.name.value,
      phone: entry.root.querySelector(".caller").textContent,
      tags,
    };
    result.textContent = "saving…";
    try {
      const resp = await fetch("/agent/api/customers", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) },
        body: JSON.stringify(body),
      });
      if (resp.status === 401) return forget(REJECTED);
      const data = await resp.json().catch(() => ({}));
      if (!calls.has(callId)) return; // forgotten meanwhile
      if (!resp.ok) {
        result.textContent = "not saved: " + show(data.reason || resp.status);
        form.dataset.created = "no";
        return;
      }
      const box = entry.root.querySelector(".customer");
      box.replaceChildren();
      renderKnown(box, { id: data.id, name: data.name, tags: data.tags, owner: null });
      if (entry.root.dataset.collapsed === "yes") fold(entry.root, true);
      box.appendChild(text("p", "Saved in the CRM: the next call from this number shows this card.", "created"));
      box.dataset.created = "yes";
    } catch (err) {
      result.textContent = "not saved: " + show(String(err));
      form.dataset.created = "no";
    }
  }

  // --- calls and the bounded history ---------------------------------------------------------

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
    root.querySelector(".call-head").addEventListener("click", () => {
      const e = calls.get(callId);
      if (e) fold(e.root, e.root.dataset.collapsed !== "yes");
    });
    root.querySelector(".clock").textContent = clock(new Date());
    $("calls").prepend(root);
    entry = { root, state: "", since: Date.now(), ringAt: null, answeredAt: null, mine: false, owed: false };
    calls.set(callId, entry);
    $("empty").hidden = true;
    arrange();
    return entry;
  }

  const LIVE = new Set(["dialing", "ringing", "answered", "transferred"]);

  // A folded card shows one line: the name on it is copied from the card when it folds
  // (and cleared when it opens), so the page never shows the name twice.
  function fold(root, folded) {
    root.dataset.collapsed = folded ? "yes" : "no";
    const name = root.querySelector(".customer-name");
    root.querySelector(".line-name").textContent = folded ? (name ? name.textContent : "Unknown caller") : "";
  }

  // The newest call stays open, and so does every call still live or still owing this agent a
  // disposition; the others fold to one line. At most MAX_CALLS cards: the oldest finished
  // ones go (their DOM and their entry).
  function arrange() {
    const cards = Array.from($("calls").children);
    cards.forEach((root, index) => {
      const entry = calls.get(root.dataset.callId);
      if (!entry) return;
      const open = index === 0 || LIVE.has(entry.state) || entry.owed;
      if (open !== (root.dataset.collapsed === "no")) fold(root, !open);
    });
    let extra = cards.length - MAX_CALLS;
    for (let i = cards.length - 1; i >= 0 && extra > 0; i--) {
      const entry = calls.get(cards[i].dataset.callId);
      if (entry && (LIVE.has(entry.state) || entry.owed)) continue;
      calls.delete(cards[i].dataset.callId);
      cards[i].remove();
      extra--;
    }
  }

  function setState(entry, state, labelText) {
    entry.state = state;
    entry.since = Date.now();
    entry.root.dataset.state = state;
    entry.root.querySelector(".state").textContent = labelText;
    if (!LIVE.has(state)) entry.root.querySelector(".timer").textContent = "";
  }

  function onCallMessage(msg) {
    if (typeof msg.call_id !== "string") return;
    const entry = callFor(msg);
    const root = entry.root;
    switch (msg.type) {
      case "call.ringing": {
        const customer = msg.customer && typeof msg.customer === "object" ? msg.customer : null;
        const cidName = show(msg.caller_name || "");
        root.querySelector(".caller-name").textContent = cidName;
        root.querySelector(".cid").hidden = !cidName || (customer && customer.name === cidName);
        root.querySelector(".caller").replaceChildren(numberNode(msg.caller));
        root.querySelector(".queue").textContent = msg.queue ? "queue " + show(msg.queue) : "";
        renderRoute(root.querySelector(".route"), msg);
        renderCustomer(root.querySelector(".customer"), customer, msg.call_id, msg.caller);
        if (!entry.state || entry.state === "retracted") {
          setState(entry, "ringing", msg.transfer_from ? "transfer from " + show(msg.transfer_from) : "ringing");
          entry.ringAt = Date.now();
          stopWrapup();
          alertRinging(customer ? "Incoming call" : "Incoming call: unknown caller");
        }
        break;
      }
      case "call.dialing": { // this agent's own call out: the dialled number's customer
        const customer = msg.customer && typeof msg.customer === "object" ? msg.customer : null;
        root.querySelector(".caller-name").textContent = "";
        root.querySelector(".cid").hidden = true;
        root.querySelector(".caller").textContent = "calling " + show(msg.caller || "");
        root.querySelector(".queue").textContent = "";
        renderCustomer(root.querySelector(".customer"), customer, msg.call_id, msg.caller);
        if (!entry.state) setState(entry, "dialing", "dialing");
        break;
      }
      case "call.answered":
        setState(entry, "answered", msg.agent === me ? "talking" : "answered by " + show(msg.agent || "?"));
        entry.answeredAt = Date.now();
        if (me !== null && msg.agent === me) offerDisposition(entry);
        break;
      case "call.retracted":
        setState(entry, "retracted", "stopped ringing: " + label(show(msg.reason || "")));
        break;
      case "call.transferred":
        setState(entry, "transferred", "transferred to " + show(msg.agent || "?"));
        if (me !== null && msg.agent === me) {
          entry.answeredAt = Date.now();
          offerDisposition(entry);
        }
        break;
      case "call.ended":
        setState(entry, "ended", "ended · talk " + duration(Number(msg.talk_s) || 0));
        if (entry.mine) startWrapup();
        loadToday();
        // The call's record (which may empty the list) is written just after it ends.
        for (const ms of [0, 1500, 5000]) setTimeout(() => { if (me !== null) loadCallbacks(); }, ms);
        break;
    }
    syncAlerts();
    arrange();
  }

  function renderRoute(node, msg) {
    const route = msg.route && typeof msg.route === "object" ? msg.route : null;
    node.replaceChildren();
    if (!route) {
      node.hidden = true;
      return;
    }
    node.hidden = false;
    // The rule's own name, as the admin wrote it ("vip rule → senior").
    const why = route.degraded ? "CRM too slow: default route"
      : route.rule === "default" ? "No rule matched: default route" : show(route.rule) + " rule";
    node.appendChild(text("span", why, "rule"));
    node.appendChild(text("span", " → " + show(route.queue || msg.queue || ""), "to"));
  }

  function offerDisposition(entry) {
    entry.mine = true;
    entry.owed = entry.root.querySelector(".disposition").dataset.saved !== "yes";
    entry.root.querySelector(".disposition").hidden = false;
  }

  // --- alerting: ring (WebAudio), notification when hidden, the title; live timers --------------

  let audio = null;
  let ring = null; // {osc, gain}
  let flash = null;
  let notice = null;

  function unlockAudio() {
    // Called from the sign-in click (a user gesture), so the context may make sound later.
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (Ctx && !audio) audio = new Ctx();
      if (audio && audio.state === "suspended") audio.resume();
    } catch (err) { audio = null; }
    if ("Notification" in window && Notification.permission === "default" && !localStorage.getItem("crm-bridge-asked")) {
      localStorage.setItem("crm-bridge-asked", "1"); // asked once, whatever the answer
      document.documentElement.dataset.notify = "requested";
      try { Notification.requestPermission(); } catch (err) { /* old browsers */ }
    }
  }

  function startRing() {
    if (ring || !audio) return;
    try {
      // Two tones (440 + 480 Hz), 2 s on, 4 s off, for up to a minute: no audio file needed.
      const gain = audio.createGain();
      gain.gain.value = 0;
      const now = audio.currentTime;
      for (let t = 0; t < 60; t += 6) {
        gain.gain.setValueAtTime(0.12, now + t);
        gain.gain.setValueAtTime(0, now + t + 2);
      }
      gain.connect(audio.destination);
      const oscs = [440, 480].map((hz) => {
        const osc = audio.createOscillator();
        osc.frequency.value = hz;
        osc.connect(gain);
        osc.start();
        return osc;
      });
      ring = { oscs, gain };
      const root = document.documentElement;
      root.dataset.ring = "on";
      root.dataset.rings = String(Number(root.dataset.rings || 0) + 1);
    } catch (err) { ring = null; }
  }

  function stopRing() {
    if (!ring) return;
    for (const osc of ring.oscs) {
      try { osc.stop(); } catch (err) { /* already stopped */ }
    }
    ring.gain.disconnect();
    ring = null;
    document.documentElement.dataset.ring = "off";
  }

  function alertRinging(title) {
    startRing();
    if (!flash) {
      let on = false;
      flash = setInterval(() => {
        on = !on;
        document.title = on ? "☎ Ringing · " + BASE_TITLE : BASE_TITLE;
      }, 800);
      document.title = "☎ Ringing · " + BASE_TITLE;
    }
    if (document.visibilityState === "hidden" && "Notification" in window && Notification.permission === "granted") {
      closeNotice();
      try {
        // No customer value in the notification: it outlives the page's control.
        notice = new Notification(title, { body: "Click to open the desk.", tag: "crm-bridge-ring" });
        notice.onclick = () => { window.focus(); closeNotice(); };
        document.documentElement.dataset.notified = String(Number(document.documentElement.dataset.notified || 0) + 1);
      } catch (err) { notice = null; }
    }
  }

  function closeNotice() {
    if (notice) {
      try { notice.close(); } catch (err) { /* gone */ }
      notice = null;
    }
  }

  function syncAlerts() {
    const ringing = Array.from(calls.values()).some((e) => e.state === "ringing");
    if (ringing) return;
    stopRing();
    closeNotice();
    if (flash) {
      clearInterval(flash);
      flash = null;
      document.title = BASE_TITLE;
    }
  }

  function tick() {
    const now = Date.now();
    for (const entry of calls.values()) {
      const node = entry.root.querySelector(".timer");
      if (entry.state === "ringing" && entry.ringAt) node.textContent = "rings " + duration((now - entry.ringAt) / 1000);
      else if ((entry.state === "answered" || entry.state === "transferred") && entry.answeredAt) {
        node.textContent = "talk " + duration((now - entry.answeredAt) / 1000);
      } else node.textContent = "";
    }
    if (wrapupSince !== null) $("wrapup").textContent = "Wrap-up " + duration((now - wrapupSince) / 1000);
  }

  function startWrapup() {
    wrapupSince = Date.now();
    $("wrapup").hidden = false;
    tick();
  }
  function stopWrapup() {
    wrapupSince = null;
    $("wrapup").hidden = true;
  }

  // --- presence: available / paused (AMI QueuePause in all the agent's queues) -------------------

  function showPresence(paused, reason) {
    const state = $("presence-state");
    state.dataset.paused = paused ? "true" : "false";
    state.textContent = paused ? "paused · " + label(show(reason || "")) : "available";
    $("pause").hidden = paused;
    $("pause-reason").hidden = paused;
    $("resume").hidden = !paused;
    $("presence-error").textContent = "";
  }

  function sendStatus(paused) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const reason = paused ? $("pause-reason").value : "";
    $("presence-error").textContent = paused ? "pausing…" : "resuming…";
    socket.send(JSON.stringify({ type: "status", paused, reason }));
  }

  // --- my calls today ---------------------------------------------------------------------

  async function loadToday() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return;
    try {
      const resp = await fetch("/agent/api/calls/today", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
      // A 401 here leaves the session to the websocket (it closes 4001/4003 for a bad token).
      if (!resp.ok || sessionStorage.getItem(TOKEN_KEY) !== token) return;
      const data = await resp.json();
      const list = $("today-list");
      list.replaceChildren();
      for (const c of (data.calls || []).slice(0, 50)) {
        const li = document.createElement("li");
        li.appendChild(text("span", clock(c.started_at), "t"));
        const who = document.createElement("span");
        who.className = "n";
        if (c.customer) who.append(show(c.customer) + " ");
        who.appendChild(numberNode(c.caller));
        li.appendChild(who);
        li.appendChild(text("span", duration(Number(c.talk_s) || 0), "d"));
        li.appendChild(text("span", label(c.disposition) || label(c.outcome), "o"));
        list.appendChild(li);
      }
      $("today-empty").hidden = list.children.length > 0;
    } catch (err) { /* offline: the list stays as it was */ }
  }

  // --- click-to-call and call backs ------------------------------------------------------------

  const DIALLABLE = /^\+?[0-9][0-9 ()./-]{2,30}$/;

  // A phone number as a button that dials it; anything else (anonymous, a name) as text.
  function numberNode(value) {
    const number = show(value || "");
    if (!DIALLABLE.test(number)) return document.createTextNode(number);
    const button = text("button", number, "dial");
    button.type = "button";
    button.title = "Call " + number;
    button.addEventListener("click", (event) => {
      event.stopPropagation(); // the call head folds on click: a dial is not a fold
      placeDial({ number }, number);
    });
    return button;
  }

  async function placeDial(body, what) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const status = $("dial-status");
    if (!token) return;
    status.dataset.ok = "";
    status.textContent = "calling " + show(what) + "…";
    try {
      const resp = await fetch("/agent/api/dial", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
        body: JSON.stringify(body),
      });
      if (resp.status === 401) return forget(REJECTED);
      if (sessionStorage.getItem(TOKEN_KEY) !== token) return;
      const data = await resp.json().catch(() => ({}));
      status.dataset.ok = resp.ok ? "yes" : "no";
      status.textContent = resp.ok
        ? "Your phone rings: answer it to call " + show(data.number || what)
        : "Not dialled: " + show(data.reason || resp.status);
    } catch (err) {
      status.dataset.ok = "no";
      status.textContent = "Not dialled: " + show(String(err));
    }
  }

  async function loadCallbacks() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return;
    try {
      const resp = await fetch("/agent/api/callbacks", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
      if (!resp.ok || sessionStorage.getItem(TOKEN_KEY) !== token) return;
      const data = await resp.json();
      const list = $("callbacks-list");
      list.replaceChildren();
      for (const c of (data.callbacks || []).slice(0, 50)) {
        const li = document.createElement("li");
        li.dataset.callId = show(c.call_id);
        li.appendChild(text("span", clock(c.started_at), "t"));
        const who = c.customer && c.customer.name ? show(c.customer.name) + " · " : "";
        li.appendChild(text("span", who + show(c.caller), "n"));
        const button = text("button", "Call back", "callback");
        button.type = "button";
        button.addEventListener("click", () => placeDial({ callback_of: c.call_id }, c.caller));
        li.appendChild(button);
        const missed = Number(c.attempts) > 1 ? " · " + Number(c.attempts) + " missed calls" : "";
        li.appendChild(text("span", (c.queue ? "queue " + show(c.queue) : "") + missed, "q"));
        list.appendChild(li);
      }
      $("callbacks-empty").hidden = list.children.length > 0;
    } catch (err) { /* offline: the list stays as it was */ }
  }

  // --- forgetting ---------------------------------------------------------------------------

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
    syncAlerts();
    stopWrapup();
    clearInterval(ticker);
    ticker = null;
    $("calls").replaceChildren();
    $("today-list").replaceChildren();
    $("callbacks-list").replaceChildren();
    $("dial-status").textContent = "";
    $("dial-number").value = "";
    $("today").hidden = true;
    $("presence").hidden = true;
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
      const entry = calls.get(callId);
      if (resp.ok && entry) {
        entry.owed = false;
        if (entry.state === "ended") stopWrapup();
        loadToday();
      }
    } catch (err) {
      status.textContent = "not saved: " + show(String(err));
      form.dataset.saved = "no";
    }
  }

  async function connect() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return showLogin("");
    let loaded;
    try {
      loaded = await (await fetch("/agent/config.json", { cache: "no-store" })).json();
    } catch (err) {
      return reconnectLater();
    }
    config = loaded && typeof loaded === "object" ? loaded : config;
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
        $("presence").hidden = false;
        $("today").hidden = false;
        $("who").textContent = "agent " + show(msg.agent);
        setStatus("online", "online");
        if (calls.size === 0) $("empty").hidden = false;
        if (!ticker) ticker = setInterval(tick, 1000);
        loadToday();
        loadCallbacks();
      } else if (msg.type === "status") {
        showPresence(msg.paused === true, msg.reason);
      } else if (msg.type === "error" && (msg.error === "status_failed" || msg.error === "unavailable")) {
        $("presence-error").textContent = "not changed: " + show(msg.reason || "");
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
      unlockAudio();
      sessionStorage.setItem(TOKEN_KEY, token);
      $("token").value = "";
      $("login-error").textContent = "";
      stopped = false;
      retry = 0;
      connect();
    });
    $("logout").addEventListener("click", () => forget("Signed out."));
    $("pause").addEventListener("click", () => sendStatus(true));
    $("resume").addEventListener("click", () => sendStatus(false));
    $("dial-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const number = $("dial-number").value.trim();
      if (number) placeDial({ number }, number);
    });
    setInterval(() => { if (me !== null) loadCallbacks(); }, 30000); // others' calls empty it too
    document.addEventListener("click", () => {
      if (audio && audio.state === "suspended") audio.resume();
    });
    if (sessionStorage.getItem(TOKEN_KEY)) connect();
  });
})();
