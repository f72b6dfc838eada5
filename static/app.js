// The wsservice browser client: a chat room plus the echo and clock tools.
//
// No build step and nothing from another host.  Every string that came from
// the network or from a person is put on the page with textContent, never
// innerHTML.  Each view owns one WebSocket with its own subprotocol; the
// Connection class below reconnects it with exponential backoff and jitter.
//
// URLs: the page is /?room=kitchen (or /#kitchen); the chat WebSocket is
// ws(s)://host/kitchen?name=alice, because the server takes the room from the
// WebSocket path and only "/" is served as index.html over plain HTTP.

const NAME_KEY = "wsservice.name";
const DEFAULT_ROOM = "lobby";
const MAX_ROOM = 64;

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const CLOSE_REASONS = {
  1000: "closed",
  1001: "the server is going away",
  1006: "connection lost",
  1008: "refused by policy",
  1009: "message too big",
  1011: "server error",
  4000: "server error",
  4001: "too slow to read",
  4002: "sending too fast",
  4003: "unsupported data",
};

// Close codes after which trying again would only repeat the same refusal.
const FINAL_CODES = new Set([1008, 4003]);

/**
 * One WebSocket that keeps itself open.
 *
 * Its state (connecting | connected | disconnected) is shown on a status
 * element as data-state.  Only the socket that was open changes the label
 * to "disconnected" (or the very first attempt, which had never connected):
 * failed retries leave the label and the first close code as they are, so it
 * does not flicker.  A socket that closes without ever opening is "never
 * opened" (unreachable or refused); one that opened and closed "dropped".
 */
class Connection {
  constructor({ protocol, url, status, notice, onOpen, onMessage, onClosed, binaryType }) {
    this.protocol = protocol;
    this.url = url;                 // a function: the URL for the next attempt
    this.statusEl = status;
    this.noticeEl = notice;
    this.onOpen = onOpen || (() => {});
    this.onMessage = onMessage || (() => {});
    this.onClosed = onClosed || (() => {});
    this.binaryType = binaryType || "blob";
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.wanted = false;
    this.everOpened = false;
    this.lastClose = null;
    this.setState("disconnected", "not connected");
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    this.wanted = true;
    this.attempt = 0;
    this.everOpened = false;
    this.lastClose = null;
    this.setState("connecting", "connecting…");
    this.hideNotice();
    this.connect();
  }

  /** Close on purpose: no reconnect, no "disconnected" warning. */
  stop() {
    this.wanted = false;
    clearTimeout(this.timer);
    clearInterval(this.ticker);
    this.timer = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close(1000, "bye");
    }
  }

  restart() {
    this.stop();
    this.start();
  }

  retryNow() {
    if (!this.wanted || this.open || (this.ws && this.ws.readyState === WebSocket.CONNECTING)) return;
    clearTimeout(this.timer);
    this.connect();
  }

  send(data) {
    if (!this.open) return false;
    this.ws.send(data);
    return true;
  }

  connect() {
    this.timer = null;
    let ws;
    try {
      ws = new WebSocket(this.url(), this.protocol);
    } catch (e) {
      this.setState("disconnected", "bad address");
      this.showNotice(String(e.message || e));
      return;
    }
    ws.binaryType = this.binaryType;
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      opened = true;
      this.everOpened = true;
      this.attempt = 0;
      this.lastClose = null;
      this.hideNotice();
      this.setState("connected", "connected");
      this.onOpen(ws);
    };
    ws.onmessage = (event) => {
      if (ws === this.ws) this.onMessage(event.data, event);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.closed(event, opened);
    };
  }

  closed(event, opened) {
    const final = FINAL_CODES.has(event.code);
    // The open socket, or the very first try, decides the label.
    if (opened || this.lastClose === null) {
      this.lastClose = { code: event.code, reason: event.reason, opened };
      const why = event.reason || CLOSE_REASONS[event.code] || "closed";
      this.setState("disconnected", `disconnected (code ${event.code})`, why);
      if (opened) this.onClosed(event);
    }
    if (!this.wanted) return;
    if (final) {
      this.wanted = false;
      this.showNotice(this.explain(false));
      return;
    }
    const delay = this.backoff();
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.timer = setTimeout(() => this.connect(), delay);
    this.showNotice(this.explain(true));
    this.countdown();
    if (!this.everOpened && this.attempt === 1) this.diagnose();
  }

  /**
   * Exponential backoff with jitter: between half and all of
   * min(cap, base * 2^attempt), so many pages that lost the same server do
   * not all come back in the same instant, and none waits near zero.
   */
  backoff() {
    const base = 500, cap = 15000;
    const ceiling = Math.min(cap, base * 2 ** this.attempt);
    return Math.round(ceiling / 2 + Math.random() * ceiling / 2);
  }

  explain(retrying) {
    const close = this.lastClose || { code: 1006, reason: "", opened: false };
    let text;
    if (!close.opened && !this.everOpened) {
      text = this.diagnosis || `Cannot connect to the ${this.protocol} service.`;
    } else {
      const why = close.reason || CLOSE_REASONS[close.code] || "closed";
      text = `Disconnected: ${why} (code ${close.code}).`;
    }
    if (retrying) {
      const left = Math.ceil((this.retryAt - Date.now()) / 1000);
      text += left > 0 && this.timer ? ` Trying again in ${left} s…` : " Trying again…";
    }
    return text;
  }

  /** Keep "Trying again in N s" true while waiting for the next attempt. */
  countdown() {
    clearInterval(this.ticker);
    this.ticker = setInterval(() => {
      if (!this.wanted || this.open || !this.noticeEl || this.noticeEl.hidden) {
        clearInterval(this.ticker);
        return;
      }
      this.setNoticeText(this.explain(true));
    }, 1000);
  }

  /**
   * A browser sees only 1006 when a handshake fails, whether the server is
   * down or refused it.  A plain HTTP request to the same host tells them
   * apart: an answer means the server is up and refused the WebSocket.
   */
  async diagnose() {
    let reachable = false;
    try {
      const base = new URL(this.url());
      base.protocol = base.protocol === "wss:" ? "https:" : "http:";
      const response = await fetch(new URL("/healthz", base), { cache: "no-store" });
      reachable = response.status > 0;
    } catch (e) {
      reachable = false;
    }
    this.diagnosisKind = reachable ? "refused" : "unreachable";
    this.diagnosis = reachable
      ? `The server refused the ${this.protocol} connection (subprotocol not offered, ` +
        `too many connections, or this page's origin is not allowed).`
      : `Cannot reach the server at ${new URL(this.url()).host}.`;
    if (this.noticeEl && this.wanted && !this.everOpened) {
      this.noticeEl.dataset.kind = this.diagnosisKind;
      this.setNoticeText(this.explain(true));
    }
  }

  setState(state, label, detail) {
    if (!this.statusEl) return;
    this.statusEl.dataset.state = state;
    this.statusEl.textContent = label;
    this.statusEl.title = detail || "";
  }

  setNoticeText(text) {
    const target = this.noticeEl.querySelector(".notice-text") || this.noticeEl;
    target.textContent = text;
  }

  showNotice(text) {
    if (!this.noticeEl) return;
    this.noticeEl.hidden = false;
    // dropped: it was open; refused/unreachable: it never opened (diagnosed
    // by diagnose()); unknown until the diagnosis is in.
    this.noticeEl.dataset.kind = this.everOpened ? "dropped" : (this.diagnosisKind || "unknown");
    this.setNoticeText(text);
  }

  hideNotice() {
    if (!this.noticeEl) return;
    this.noticeEl.hidden = true;
    delete this.noticeEl.dataset.kind;
    this.diagnosis = this.diagnosisKind = null;
  }
}

function wsBase() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
}

function formatTime(iso) {
  const date = iso ? new Date(iso) : new Date();
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function colourFor(text) {
  let hash = 0;
  for (const ch of text) hash = (hash * 31 + ch.codePointAt(0)) | 0;
  return `hsl(${Math.abs(hash) % 360} 55% 45%)`;
}

function initial(name) {
  const first = Array.from((name || "?").trim())[0] || "?";
  return first.toUpperCase();
}

function formatBytes(n) {
  return `${n.toLocaleString("en")} byte${n === 1 ? "" : "s"}`;
}

// ---------------------------------------------------------------- chat

class ChatView {
  constructor() {
    this.log = $("log");
    this.membersEl = $("members");
    this.msg = $("msg");
    this.sendButton = $("send");
    this.name = localStorage.getItem(NAME_KEY) || "";
    this.room = roomFromLocation();
    this.members = new Map();
    this.myIds = new Set();
    this.myId = null;
    this.seen = new Set();          // "seq@time" of every event shown
    this.lastSeq = 0;
    this.unread = 0;
    this.conn = new Connection({
      protocol: "chat",
      url: () => `${wsBase()}/${encodeURIComponent(this.room)}?name=${encodeURIComponent(this.name)}`,
      status: $("status"),
      notice: $("notice"),
      onOpen: () => this.opened(),
      onMessage: (data) => this.received(data),
      onClosed: () => this.dropped(),
    });

    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      this.sendMessage();
    });
    $("room-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.switchRoom($("room-input").value, true);
    });
    $("retry").addEventListener("click", () => {
      if (this.conn.wanted) this.conn.retryNow();
      else this.conn.start();     // it gave up after a final close code
    });
    $("me").addEventListener("click", () => this.askName());
    window.addEventListener("popstate", () => this.switchRoom(roomFromLocation(), false));
    window.addEventListener("online", () => this.conn.retryNow());
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.clearUnread();
    });

    const dialog = $("name-dialog");
    dialog.addEventListener("cancel", (e) => {
      if (!this.name) e.preventDefault();   // a name is needed to join
    });
    $("name-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const name = $("name-input").value.trim().replace(/\s+/g, " ");
      if (!name) return;
      dialog.close();
      this.setName(name);
    });
  }

  begin() {
    this.showRoom();
    this.showName();
    if (this.name) this.conn.start();
    else this.askName();
  }

  askName() {
    $("name-input").value = this.name;
    $("name-dialog").showModal();
    $("name-input").focus();
  }

  setName(name) {
    const first = !this.name;
    this.name = name;
    localStorage.setItem(NAME_KEY, name);
    this.showName();
    if (first) this.conn.start();
    else this.conn.send(JSON.stringify({ type: "rename", name }));
    this.msg.focus();
  }

  showName() {
    $("me-name").textContent = this.name || "choose a name";
    $("me-avatar").textContent = initial(this.name);
    $("me-avatar").style.background = colourFor(this.name || "?");
  }

  showRoom() {
    $("room-input").value = this.room;
    $("room-name").textContent = `#${this.room}`;
    this.updateTitle();
  }

  updateTitle() {
    document.title = `${this.unread ? `(${this.unread}) ` : ""}#${this.room} · wsservice`;
  }

  clearUnread() {
    this.unread = 0;
    this.updateTitle();
  }

  switchRoom(raw, push) {
    const room = cleanRoom(raw);
    if (room === this.room) {
      this.showRoom();
      return;
    }
    this.room = room;
    if (push) history.pushState({ room }, "", roomUrl(room));
    this.showRoom();
    this.log.replaceChildren();
    this.wasDropped = false;
    this.members.clear();
    this.renderMembers();
    this.seen.clear();
    this.lastSeq = 0;
    if (this.name) this.conn.restart();
  }

  opened() {
    this.sendButton.disabled = false;
    $("view-chat").classList.remove("offline");
    if (this.wasDropped) this.addSystem("Reconnected.", null, "local");
    this.wasDropped = false;
  }

  dropped() {
    this.sendButton.disabled = true;
    this.wasDropped = true;
    $("view-chat").classList.add("offline");
    this.addSystem("Connection lost; reconnecting…", null, "local");
  }

  sendMessage() {
    const text = this.msg.value;
    if (!text.trim()) return;
    // Keep the text if it cannot go now: nothing typed is ever lost.
    if (this.conn.send(JSON.stringify({ message: text }))) this.msg.value = "";
  }

  received(data) {
    if (typeof data !== "string") {
      this.addSystem(`binary message, ${formatBytes(data.size ?? data.byteLength ?? 0)}`);
      return;
    }
    let event;
    try {
      event = JSON.parse(data);
    } catch (e) {
      event = { type: "message", name: "", message: data };
    }
    if (event === null || typeof event !== "object") return;
    const type = event.type || (event.name ? "message" : "system");
    switch (type) {
      case "welcome": return this.welcome(event);
      case "history": return this.history(event.messages || []);
      case "message": return this.addMessage(event, false);
      case "join":
        this.setMember(event.user);
        return this.addSystem(event.message, event);
      case "rename":
        this.setMember(event.user);
        if (event.user && event.user.id === this.myId) {
          this.name = event.user.name;
          localStorage.setItem(NAME_KEY, this.name);
          this.showName();
        }
        return this.addSystem(event.message, event);
      case "leave":
        if (event.user) this.members.delete(event.user.id);
        this.renderMembers();
        return this.addSystem(event.message, event);
      case "error":
        return this.addSystem(event.message || "error", event, "error");
      default:
        if (event.message) this.addSystem(event.message, event);
    }
  }

  welcome(event) {
    // A smaller sequence number than we saw means the server forgot the room
    // (it restarted): ids may be reused, so only this connection's id is ours.
    if (typeof event.seq === "number" && event.seq < this.lastSeq) this.myIds.clear();
    this.myId = event.id;
    this.myIds.add(event.id);
    if (typeof event.seq === "number") this.lastSeq = event.seq;
    if (event.you && event.you !== this.name) {
      this.name = event.you;
      this.showName();
    }
    this.members.clear();
    for (const member of event.members || []) this.members.set(member.id, member.name);
    this.renderMembers();
  }

  history(messages) {
    const fresh = messages.filter((m) => !this.seen.has(key(m)));
    if (!fresh.length) return;
    const divider = el("li", "divider history", this.log.children.length ? "missed while away" : "earlier messages");
    this.log.append(divider);
    for (const message of fresh) this.addMessage(message, true);
    this.scroll(true);
  }

  setMember(user) {
    if (!user) return;
    this.members.set(user.id, user.name);
    this.renderMembers();
  }

  renderMembers() {
    const items = Array.from(this.members, ([id, name]) => ({ id, name }))
      .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
    this.membersEl.replaceChildren(...items.map(({ id, name }) => {
      const li = el("li", id === this.myId ? "member me" : "member");
      li.dataset.id = id;
      const avatar = el("span", "avatar", initial(name));
      avatar.style.background = colourFor(name);
      li.append(avatar, el("span", "member-name", name));
      if (id === this.myId) li.append(el("span", "you", "you"));
      return li;
    }));
    $("member-count").textContent = String(items.length);
  }

  nearBottom() {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 80;
  }

  scroll(force) {
    if (force || this.stick) this.log.scrollTop = this.log.scrollHeight;
  }

  addMessage(event, fromHistory) {
    const k = key(event);
    if (this.seen.has(k)) return;
    this.seen.add(k);
    this.stick = this.nearBottom();
    const mine = event.id !== undefined && this.myIds.has(event.id);
    const li = el("li", "msg" + (mine ? " mine" : "") + (fromHistory ? " history" : ""));
    if (event.id !== undefined) li.dataset.id = event.id;
    if (event.seq !== undefined) li.dataset.seq = event.seq;
    const name = event.name || "anonymous";
    const avatar = el("span", "avatar", initial(name));
    avatar.style.background = colourFor(name);
    avatar.setAttribute("aria-hidden", "true");
    const bubble = el("div", "bubble");
    const meta = el("div", "meta");
    const who = el("span", "who", name);
    who.style.color = colourFor(name);
    meta.append(who, timeElement(event.time));
    bubble.append(meta, el("div", "text", String(event.message ?? "")));
    li.append(avatar, bubble);
    this.log.append(li);
    this.scroll(mine);
    if (!fromHistory && !mine && document.hidden) {
      this.unread += 1;
      this.updateTitle();
    }
  }

  addSystem(text, event, kind) {
    if (event && event.seq !== undefined) {
      const k = key(event);
      if (this.seen.has(k)) return;
      this.seen.add(k);
    }
    this.stick = this.nearBottom();
    const li = el("li", "sys" + (kind ? ` ${kind}` : "") + (event && event.type ? ` ${event.type}` : ""));
    li.append(el("span", "text", String(text ?? "")), timeElement(event && event.time));
    this.log.append(li);
    this.scroll(false);
  }
}

function key(event) {
  return `${event.seq}@${event.time}`;
}

function timeElement(iso) {
  const time = el("time", "time", formatTime(iso));
  const date = iso ? new Date(iso) : new Date();
  if (!Number.isNaN(date.getTime())) {
    time.dateTime = date.toISOString();
    time.title = date.toLocaleString();
  }
  return time;
}

function cleanRoom(raw) {
  const room = String(raw || "").trim().replace(/^[#/]+|\/+$/g, "").slice(0, MAX_ROOM);
  return room || DEFAULT_ROOM;
}

function roomFromLocation() {
  const params = new URLSearchParams(location.search);
  if (params.get("room")) return cleanRoom(params.get("room"));
  if (location.hash.length > 1) return cleanRoom(decodeURIComponent(location.hash.slice(1)));
  return DEFAULT_ROOM;
}

function roomUrl(room) {
  const params = new URLSearchParams(location.search);
  params.set("room", room);
  return `${location.pathname}?${params}`;
}

// ---------------------------------------------------------------- echo

class EchoView {
  constructor() {
    this.log = $("echo-log");
    this.pending = [];              // what was sent, to compare with what comes back
    this.conn = new Connection({
      protocol: "echo",
      url: () => `${wsBase()}/`,
      status: $("echo-status"),
      notice: $("echo-notice"),
      binaryType: "arraybuffer",
      onOpen: () => { this.pending = []; },
      onMessage: (data) => this.received(data),
    });
    $("echo-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = $("echo-text");
      if (this.conn.send(input.value)) {
        this.pending.push(input.value);
        this.add("sent", "text", input.value, new TextEncoder().encode(input.value).length);
        input.value = "";
      }
    });
    $("echo-file").addEventListener("change", async (e) => {
      const file = e.target.files[0];
      if (!file) return;
      const bytes = await file.arrayBuffer();
      if (this.conn.send(bytes)) {
        this.pending.push(new Uint8Array(bytes));
        this.add("sent", "binary", `${file.name} · ${hexPreview(bytes)}`, bytes.byteLength);
      }
      e.target.value = "";
    });
  }

  received(data) {
    const expected = this.pending.shift();
    if (typeof data === "string") {
      const same = typeof expected === "string" && expected === data;
      this.add("back", "text", data, new TextEncoder().encode(data).length, same);
    } else {
      const got = new Uint8Array(data);
      const same = expected instanceof Uint8Array && equalBytes(expected, got);
      this.add("back", "binary", hexPreview(data), data.byteLength, same);
    }
  }

  add(direction, kind, text, size, same) {
    const li = el("li", `echo ${direction} ${kind}`);
    li.append(
      el("span", "dir", direction === "sent" ? "→" : "←"),
      el("span", "kind", kind),
      el("span", "text", text),
      el("span", "size", formatBytes(size)),
    );
    if (same !== undefined) li.append(el("span", same ? "match ok" : "match bad", same ? "✓ same" : "✗ differs"));
    this.log.prepend(li);
  }
}

function hexPreview(buffer) {
  const bytes = new Uint8Array(buffer, 0, Math.min(16, buffer.byteLength));
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
  return buffer.byteLength > 16 ? `${hex} …` : hex;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------- clock

class ClockView {
  constructor() {
    this.ticks = 0;
    this.conn = new Connection({
      protocol: "clock",
      url: () => `${wsBase()}/`,
      status: $("clock-status"),
      notice: $("clock-notice"),
      onMessage: (data) => this.received(data),
    });
    $("clock-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const raw = $("clock-interval").value.trim();
      const number = Number(raw);
      // The server validates; send what was typed so its error is shown.
      const interval = raw !== "" && Number.isFinite(number) ? number : raw;
      $("clock-error").hidden = true;
      this.conn.send(JSON.stringify({ interval }));
    });
  }

  received(data) {
    let event;
    try {
      event = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (event.type === "error") {
      const error = $("clock-error");
      error.textContent = String(event.message);
      error.hidden = false;
    } else if (event.type === "tick") {
      this.ticks += 1;
      const date = new Date(event.time);
      $("clock-time").textContent = date.toLocaleTimeString([], { hour12: false });
      $("clock-time").dateTime = event.time;
      $("clock-utc").textContent = `${event.time} (UTC)`;
      $("clock-current").textContent = String(event.interval);
      $("clock-ticks").textContent = `${this.ticks} tick${this.ticks === 1 ? "" : "s"}`;
      const skew = (Date.now() - date.getTime()) / 1000;
      $("clock-skew").textContent = Math.abs(skew) < 0.05
        ? "your clock agrees"
        : `your clock is ${Math.abs(skew).toFixed(2)} s ${skew > 0 ? "ahead" : "behind"}`;
    }
  }
}

// ---------------------------------------------------------------- tabs

function showView(view, views) {
  for (const button of document.querySelectorAll("[role=tab]")) {
    const selected = button.dataset.view === view;
    button.setAttribute("aria-selected", String(selected));
    $(`view-${button.dataset.view}`).hidden = !selected;
  }
  // The tools connect the first time they are shown, and stay connected.
  const tool = views[view];
  if (tool && !tool.conn.wanted && !tool.conn.open) tool.conn.start();
  const params = new URLSearchParams(location.search);
  if (view === "chat") params.delete("view");
  else params.set("view", view);
  const query = params.toString();
  history.replaceState(history.state, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
}

function main() {
  const chat = new ChatView();
  const echo = new EchoView();
  const clock = new ClockView();
  const views = { echo, clock };
  for (const button of document.querySelectorAll("[role=tab]")) {
    button.addEventListener("click", () => showView(button.dataset.view, views));
  }
  chat.begin();
  const initialView = new URLSearchParams(location.search).get("view");
  if (initialView === "echo" || initialView === "clock") showView(initialView, views);
  // For tests and the curious: the live objects, read-only by convention.
  window.wsclient = { chat, echo, clock };
}

main();
