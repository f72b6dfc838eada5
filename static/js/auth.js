// Signing in: where tokens come from, how they travel, when to refresh.
//
// An application that embeds this page signs its users in by defining
// window.wsserviceToken before the page's scripts run: a function that
// returns (or resolves to) a current token for the service.  The page then
// offers it as the subprotocol bearer.<base64url(token)> beside "chat" (a
// browser cannot set headers on a WebSocket, and a URL ends up in logs),
// asks for a fresh one before the welcome's "expires", sends it as
// {"type":"refresh"}, and reconnects with a fresh one after a 4100 close.
// Without the function the page is anonymous and asks for a name.

export function signIn() {
  const source = window.wsserviceToken;
  return typeof source === "function" ? new SignIn(source) : null;
}

class SignIn {
  constructor(source) {
    this.source = source;
    this.timer = null;
  }

  async token() {
    try {
      return String((await this.source()) || "");
    } catch (e) {
      return "";
    }
  }

  async protocols(main) {
    const token = await this.token();
    return token ? [main, `bearer.${base64url(token)}`] : [main];
  }

  /**
   * Call refresh a while before an identity expiring at iso (ISO 8601) does:
   * a third of the time left, at most a minute before.
   */
  expiresAt(iso, refresh) {
    clearTimeout(this.timer);
    if (!iso) return;
    const left = Date.parse(iso) - Date.now();
    this.timer = setTimeout(refresh, Math.max(0, left - Math.min(60000, left / 3)));
  }
}

function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
