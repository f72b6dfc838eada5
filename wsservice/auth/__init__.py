"""
Verified identity at the handshake.

An authenticator plugin (L{wsservice.interfaces.IAuthenticator}; C{--auth
NAME} picks one) turns an upgrade request and the token it carries into an
L{identity.Identity}, or refuses it with 401, 403 or 503 and a reason,
before the upgrade.  Built in: C{jwt} (L{tokens}: signed tokens checked
here, the algorithm fixed by configuration) and C{hook} (L{hook}: the
application's backend is asked, with the request's cookies or headers).

The token travels, in this order of precedence (L{carriers}): an extra
subprotocol C{bearer.<base64url(token)>} offered beside the real one (only
the real one is echoed, so a browser need not put the token in a URL), an
C{Authorization: Bearer} header, a cookie (C{--auth-cookie}), and
C{?token=} only with C{--auth-allow-query}.  Tokens never appear in a log
line, and handlers never see them.

A connection's identity expires: past its C{expires} and the grace, the
connection is closed with 4100 ("reconnect with a new token") unless it was
refreshed (L{wsservice.interfaces.IConnection.refresh}).
"""
