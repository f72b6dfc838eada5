// Small DOM and formatting helpers shared by the views.  Whatever text they
// put on the page goes in with textContent, never innerHTML.

export const $ = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function timeElement(iso) {
  const time = el("time", "time", formatTime(iso));
  const date = iso ? new Date(iso) : new Date();
  if (!Number.isNaN(date.getTime())) {
    time.dateTime = date.toISOString();
    time.title = date.toLocaleString();
  }
  return time;
}

export function formatTime(iso) {
  const date = iso ? new Date(iso) : new Date();
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function colourFor(text) {
  let hash = 0;
  for (const ch of text) hash = (hash * 31 + ch.codePointAt(0)) | 0;
  return `hsl(${Math.abs(hash) % 360} 55% 45%)`;
}

export function initial(name) {
  const first = Array.from((name || "?").trim())[0] || "?";
  return first.toUpperCase();
}

export function formatBytes(n) {
  return `${n.toLocaleString("en")} byte${n === 1 ? "" : "s"}`;
}
