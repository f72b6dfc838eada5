// The clock view: the server's ticks, their interval, and how far this
// machine's clock is from the server's.

import { Connection, wsBase } from "./connection.js";
import { $ } from "./dom.js";
import { StatusView } from "./status.js";

export class ClockView {
  constructor() {
    this.ticks = 0;
    this.conn = new Connection({
      protocol: "clock",
      url: () => `${wsBase()}/`,
      status: new StatusView($("clock-status"), $("clock-notice")),
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
