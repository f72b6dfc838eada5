from twisted.application.service import ServiceMaker

wsservice = ServiceMaker(
    "wsservice",
    "wsservice.tap",
    "Real-time WebSocket service: chat, echo, clock and handler plugins on one port.",
    "wsservice",
)
