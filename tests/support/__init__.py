"""
What the tests share: real processes (L{processes}, which C{bench/} uses
too, so it imports no pytest), tools the tests need (L{tools}), and real
WebSocket clients (L{wsclient}, L{rawws} for malformed input).
"""
