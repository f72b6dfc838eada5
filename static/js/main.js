// The wsservice browser client: a chat room plus the echo and clock tools.
// This module holds the tabs and main(), which builds the three views and
// exposes them as window.wsclient.
//
// No build step and nothing from another host.  Every string that came from
// the network or from a person is put on the page with textContent, never
// innerHTML.  Each view owns one WebSocket with its own subprotocol; the
// Connection class (connection.js) reconnects it with exponential backoff
// and jitter.

import { ChatView } from "./chat.js";
import { ClockView } from "./clock.js";
import { $ } from "./dom.js";
import { EchoView } from "./echo.js";

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
