// StatusView: how a Connection's state appears on the page.  A status
// element carries the state as data-state, a short label, and the reason as
// its title; a notice, hidden until there is something to explain, says
// what happened and carries its kind as data-kind.  Either may be absent.

export class StatusView {
  constructor(status, notice) {
    this.statusEl = status;
    this.noticeEl = notice;
  }

  state(state, label, detail) {
    if (!this.statusEl) return;
    this.statusEl.dataset.state = state;
    this.statusEl.textContent = label;
    this.statusEl.title = detail || "";
  }

  get noticeShown() {
    return Boolean(this.noticeEl) && !this.noticeEl.hidden;
  }

  showNotice(kind, text) {
    if (!this.noticeEl) return;
    this.noticeEl.hidden = false;
    this.noticeEl.dataset.kind = kind;
    this.noticeText(text);
  }

  noticeKind(kind) {
    if (this.noticeEl) this.noticeEl.dataset.kind = kind;
  }

  noticeText(text) {
    if (!this.noticeEl) return;
    // The chat notice holds a Retry button beside its text; the tools'
    // notices are nothing but text.
    const target = this.noticeEl.querySelector(".notice-text") || this.noticeEl;
    target.textContent = text;
  }

  hideNotice() {
    if (!this.noticeEl) return;
    this.noticeEl.hidden = true;
    delete this.noticeEl.dataset.kind;
  }
}
