"""
The built-in subprotocol handlers: L{echo}, L{chat} and L{clock}.
"""
