"""
wsservice: one Twisted process serving a browser client over HTTP and
WebSocket subprotocols (chat, echo, clock and plugins) on the same port.
"""

__version__ = "0.1.0"
