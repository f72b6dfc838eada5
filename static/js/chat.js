// The chat view (name, room, log, members) and the helpers that read and
// write the room in the page address.
//
// URLs: the page is /?room=kitchen (or /#kitchen); the chat WebSocket is
// ws(s)://host/kitchen?name=alice, because the server takes the room from the
// WebSocket path and only "/" is served as index.html over plain HTTP.

import { signIn } from "./auth.js";
import { Connection, wsBase } from "./connection.js";
import { $, colourFor, el, formatBytes, initial, timeElement } from "./dom.js";
import { StatusView } from "./status.js";

const NAME_KEY = "wsservice.name";
const DEFAULT_ROOM = "lobby";
const MAX_ROOM = 64;

export class ChatView {
  constructor() {
    this.log = $("log");
    this.membersEl = $("members");
    this.msg = $("msg");
    this.sendButton = $("send");
    this.name = localStorage.getItem(NAME_KEY) || "";
    this.room = roomFromLocation();
    this.members = new Map();
    this.count = 0;                 // the room's size, from the server
    this.nextMembers = null;        // cursor of the next page of members
    this.myIds = new Set();
    this.myId = null;
    this.myMember = null;           // our id in member lists: user or connection
    this.myUser = null;             // our user id, when signed in
    this.seen = new Set();          // "seq@time" of every event shown
    this.lastSeq = 0;               // the last seq received, in this.epoch
    this.epoch = null;              // the room's epoch (see the README's Recovery)
    this.unread = 0;
    // With a sign-in (auth.js), the token says who we are: no name to ask.
    this.signIn = signIn();
    this.conn = new Connection({
      protocol: "chat",
      protocols: this.signIn ? () => this.signIn.protocols("chat") : null,
      url: () => this.socketUrl(),
      status: new StatusView($("status"), $("notice")),
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
    $("more-members").addEventListener("click", () => this.moreMembers());
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

  // Back after a drop, ask for what was missed: ?since=<last seq>&epoch=.
  socketUrl() {
    let url = `${wsBase()}/${encodeURIComponent(this.room)}?name=${encodeURIComponent(this.name)}`;
    if (this.epoch) url += `&since=${this.lastSeq}&epoch=${encodeURIComponent(this.epoch)}`;
    return url;
  }

  begin() {
    this.showRoom();
    this.showName();
    if (this.name || this.signIn) this.conn.start();
    else this.askName();
  }

  askName() {
    if (this.signIn) return;          // the name comes from the sign-in
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
    this.count = 0;
    this.nextMembers = null;
    this.renderMembers();
    this.seen.clear();
    this.lastSeq = 0;
    this.epoch = null;
    if (this.name) this.conn.restart();
  }

  opened() {
    this.opens = (this.opens || 0) + 1;
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
    if (type !== "welcome" && type !== "resumed") this.track(event);
    // Events a recovery replays are shown as missed, like history.
    const missed = this.replaying > 0 && typeof event.seq === "number";
    if (missed) this.replaying -= 1;
    switch (type) {
      case "welcome": return this.welcome(event);
      case "resumed": return this.resumed(event);
      case "history": return this.history(event.messages || []);
      case "message": return this.addMessage(event, missed);
      case "presence": return this.presence(event);
      case "refreshed": return this.refreshed(event);
      case "members": return this.memberPage(event);
      case "error":
        return this.addSystem(event.message || "error", event, "error");
      default:
        if (event.message) this.addSystem(event.message, event);
    }
  }

  // The last seq of the room's epoch we have: where a reconnect resumes.
  track(event) {
    if (typeof event.seq === "number" && event.epoch && event.epoch === this.epoch) {
      this.lastSeq = Math.max(this.lastSeq, event.seq);
    }
  }

  // The answer to a reconnect with ?since=: either exactly the events we
  // missed follow (recovered), or the room could not give them and a
  // welcome and the history follow, as for a newcomer.
  resumed(event) {
    if (!event.recovered) {
      this.recoveries = { recovered: false };
      this.addSystem("Some messages could not be recovered; here is the room as it is now.",
        null, "local gap");
      return;
    }
    this.recoveries = { recovered: true, missed: event.missed };
    this.replaying = event.missed || 0;
    this.myId = event.id;
    this.myIds.add(event.id);
    if (typeof event.count === "number") this.count = event.count;
    if (event.missed) this.log.append(el("li", "divider history", "missed while away"));
    this.renderMembers();
  }

  welcome(event) {
    // Another epoch means the server lost the room (it restarted, or its
    // history expired): ids may be reused, so only this connection's is ours.
    if (event.epoch !== this.epoch || (typeof event.seq === "number" && event.seq < this.lastSeq)) {
      this.myIds.clear();
    }
    this.epoch = event.epoch || null;
    this.myId = event.id;
    this.myIds.add(event.id);
    if (typeof event.seq === "number") this.lastSeq = event.seq;
    if (event.you && event.you !== this.name) {
      this.name = event.you;
      this.showName();
    }
    // Signed in, we are our user (one member whatever the tabs); else this
    // connection.
    this.myMember = event.user || event.id;
    this.myUser = event.user || null;
    this.members.clear();
    this.members.set(this.myMember, event.you);     // on whichever page, we are here
    this.memberPage(event);
    if (this.signIn) this.signedInUntil(event.expires);
  }

  signedInUntil(expires) {
    $("me").dataset.expires = expires || "";
    this.signIn.expiresAt(expires, () => this.refresh());
  }

  // Send a fresh token before ours expires, so the server does not close
  // the connection with 4100.
  async refresh() {
    const token = await this.signIn.token();
    if (token) this.conn.send(JSON.stringify({ type: "refresh", token }));
  }

  refreshed(event) {
    this.refreshes = (this.refreshes || 0) + 1;
    this.signedInUntil(event.expires);
  }

  // A page of members (the welcome's first, or one asked for): the list
  // grows by it, and "Show more" asks for the next while there is one.
  memberPage(event) {
    for (const member of event.members || []) this.members.set(member.id, member.name);
    if (typeof event.count === "number") this.count = event.count;
    this.nextMembers = event.next ?? null;
    this.renderMembers();
  }

  moreMembers() {
    if (this.nextMembers) this.conn.send(JSON.stringify({ type: "members", after: this.nextMembers }));
  }

  // One event for the room's joins, renames and leaves of the last
  // interval, applied in that order (see the README's chat protocol).
  presence(event) {
    for (const user of event.joined || []) this.members.set(user.id, user.name);
    for (const user of event.renamed || []) {
      this.members.set(user.id, user.name);
      if (user.id === this.myMember) {
        this.name = user.name;
        localStorage.setItem(NAME_KEY, this.name);
        this.showName();
      }
    }
    for (const user of event.left || []) this.members.delete(user.id);
    if (typeof event.count === "number") this.count = event.count;
    this.renderMembers();
    if (event.message) this.addSystem(event.message, event);
  }

  history(messages) {
    const fresh = messages.filter((m) => !this.seen.has(key(m)));
    if (!fresh.length) return;
    const divider = el("li", "divider history", this.log.children.length ? "missed while away" : "earlier messages");
    this.log.append(divider);
    for (const message of fresh) this.addMessage(message, true);
    this.scroll(true);
  }

  renderMembers() {
    const items = Array.from(this.members, ([id, name]) => ({ id, name }))
      .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
    this.membersEl.replaceChildren(...items.map(({ id, name }) => {
      const li = el("li", id === this.myMember ? "member me" : "member");
      li.dataset.id = id;
      const avatar = el("span", "avatar", initial(name));
      avatar.style.background = colourFor(name);
      li.append(avatar, el("span", "member-name", name));
      if (id === this.myMember) li.append(el("span", "you", "you"));
      return li;
    }));
    $("member-count").textContent = String(this.count ?? items.length);
    $("more-members").hidden = !this.nextMembers;
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
    const mine = (event.id !== undefined && this.myIds.has(event.id)) ||
      (this.myUser !== null && event.user === this.myUser);
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
