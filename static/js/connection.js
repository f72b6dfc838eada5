// Connection: one WebSocket that keeps itself open (reconnect, backoff with
// jitter, and telling a refused handshake from an unreachable server), and
// wsBase(), the ws:// or wss:// address of the server that served this page.

const CLOSE_REASONS = {
  1000: "closed",
  1001: "the server is going away",
  1003: "unsupported data",
  1006: "connection lost",
  1007: "invalid text",
  1008: "refused by policy",
  1009: "message too big",
  1011: "server error",
  4000: "server error",
  4001: "too slow to read",
  4002: "sending too fast",
  4100: "sign-in expired",
  4403: "not allowed",
};

/**
 * What a close code asks of a client (the README's close code table):
 * "stop" (trying again would repeat the refusal), "new-token" (reconnect at
 * once with a fresh token) or "reconnect" (with backoff).
 */
export function advice(code) {
  if (code >= 4100 && code <= 4199) return "new-token";
  if ((code >= 4400 && code <= 4499) || [1003, 1007, 1008, 1009].includes(code)) return "stop";
  return "reconnect";
}

/**
 * One WebSocket that keeps itself open.
 *
 * Its state (connecting | connected | disconnected) is shown through a
 * StatusView (status.js), which puts it on a status element as data-state;
 * the Connection itself never touches the page.  Only the socket that was
 * open changes the label to "disconnected" (or the very first attempt, which
 * had never connected): failed retries leave the label and the first close
 * code as they are, so it does not flicker.  A socket that closes without
 * ever opening is "never opened" (unreachable or refused); one that opened
 * and closed "dropped".
 */
export class Connection {
  constructor({ protocol, protocols, url, status, onOpen, onMessage, onClosed, binaryType }) {
    this.protocol = protocol;
    // A function giving (perhaps asynchronously) the subprotocols to offer
    // on the next attempt: a sign-in token travels as one of them.
    this.protocols = protocols || (() => [protocol]);
    this.url = url;                 // a function: the URL for the next attempt
    this.status = status;           // a StatusView: the state and notice on the page
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
    this.status.state("disconnected", "not connected");
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    this.wanted = true;
    this.attempt = 0;
    this.everOpened = false;
    this.lastClose = null;
    this.status.state("connecting", "connecting…");
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

  async connect() {
    this.timer = null;
    if (this.preparing) return;
    let ws;
    try {
      this.preparing = true;
      let protocols;
      try {
        protocols = await this.protocols();
      } finally {
        this.preparing = false;
      }
      if (!this.wanted) return;
      ws = new WebSocket(this.url(), protocols);
    } catch (e) {
      this.status.state("disconnected", "bad address");
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
      this.status.state("connected", "connected");
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
    const next = advice(event.code);
    const final = next === "stop";
    // The open socket, or the very first try, decides the label.
    if (opened || this.lastClose === null) {
      this.lastClose = { code: event.code, reason: event.reason, opened };
      const why = event.reason || CLOSE_REASONS[event.code] || "closed";
      this.status.state("disconnected", `disconnected (code ${event.code})`, why);
      if (opened) this.onClosed(event);
    }
    if (!this.wanted) return;
    if (final) {
      this.wanted = false;
      this.showNotice(this.explain(false));
      return;
    }
    // A fresh token is all it takes: no backoff for the first try.
    const delay = next === "new-token" && opened ? 0 : this.backoff();
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
      if (!this.wanted || this.open || !this.status.noticeShown) {
        clearInterval(this.ticker);
        return;
      }
      this.status.noticeText(this.explain(true));
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
    if (this.wanted && !this.everOpened) {
      this.status.noticeKind(this.diagnosisKind);
      this.status.noticeText(this.explain(true));
    }
  }

  showNotice(text) {
    // dropped: it was open; refused/unreachable: it never opened (diagnosed
    // by diagnose()); unknown until the diagnosis is in.
    this.status.showNotice(this.everOpened ? "dropped" : (this.diagnosisKind || "unknown"), text);
  }

  hideNotice() {
    this.status.hideNotice();
    this.diagnosis = this.diagnosisKind = null;
  }
}

export function wsBase() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
}
