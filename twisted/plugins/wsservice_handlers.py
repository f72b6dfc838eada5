from wsservice.handlers.chat import ChatHandler
from wsservice.handlers.clock import ClockHandler
from wsservice.handlers.echo import EchoHandler

__all__ = ["ChatHandler", "ClockHandler", "EchoHandler"]
