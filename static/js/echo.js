// The echo view: what was sent, what came back, and whether the two match.

import { Connection, wsBase } from "./connection.js";
import { $, el, formatBytes } from "./dom.js";
import { StatusView } from "./status.js";

export class EchoView {
  constructor() {
    this.log = $("echo-log");
    this.pending = [];              // what was sent, to compare with what comes back
    this.conn = new Connection({
      protocol: "echo",
      url: () => `${wsBase()}/`,
      status: new StatusView($("echo-status"), $("echo-notice")),
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
