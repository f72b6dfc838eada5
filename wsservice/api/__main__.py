"""
A command-line client of the backend API, for scripts and operators::

    python -m wsservice.api --key-file api.key publish kitchen "deploy at 18:00"
    python -m wsservice.api --key-file api.key rooms --prefix team-
    python -m wsservice.api --key-file api.key disconnect-user u42 --reason banned

It prints the API's JSON answer and exits with 0, or prints the error and
exits with 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote, urlencode


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wsservice.api",
                                description="Call the wsservice backend API.")
    p.add_argument("--url", default="http://127.0.0.1:60000",
                   help="where the service (or its --api-listen) answers")
    p.add_argument("--key-file", type=Path, required=True,
                   help="a file whose first key is sent")
    commands = p.add_subparsers(dest="command", required=True)
    publish = commands.add_parser("publish", help="publish a message into a room")
    publish.add_argument("room")
    publish.add_argument("message")
    publish.add_argument("--name", default="")
    publish.add_argument("--data", type=json.loads, help="JSON passed through to clients")
    publish.add_argument("--idempotency-key")
    broadcast = commands.add_parser("broadcast", help="publish one message into many rooms")
    broadcast.add_argument("message")
    broadcast.add_argument("rooms", nargs="+")
    broadcast.add_argument("--name", default="")
    rooms = commands.add_parser("rooms", help="list rooms")
    rooms.add_argument("--prefix", default="")
    rooms.add_argument("--after")
    rooms.add_argument("--limit", type=int, default=100)
    room = commands.add_parser("room", help="one room's counts and members")
    room.add_argument("room")
    history = commands.add_parser("history", help="a room's events after a seq")
    history.add_argument("room")
    history.add_argument("--since", type=int, default=0)
    history.add_argument("--limit", type=int, default=100)
    for command in ("disconnect-user", "disconnect-connection"):
        d = commands.add_parser(command, help=f"close a {command.split('-')[1]}'s connections")
        d.add_argument("id")
        d.add_argument("--code", type=int, default=4403)
        d.add_argument("--reason", default="disconnected by the server")
    commands.add_parser("info", help="about the service")
    return p


def request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    """
    The method, path and body that C{args} ask for.
    """
    room = quote(getattr(args, "room", "") or "", safe="")
    if args.command == "publish":
        body = {"message": args.message, "name": args.name}
        if args.data is not None:
            body["data"] = args.data
        if args.idempotency_key:
            body["idempotency_key"] = args.idempotency_key
        return "POST", f"/api/rooms/{room}/publish", body
    if args.command == "broadcast":
        return "POST", "/api/broadcast", {"rooms": args.rooms, "message": args.message,
                                          "name": args.name}
    if args.command == "rooms":
        query = {"prefix": args.prefix, "limit": args.limit}
        if args.after:
            query["after"] = args.after
        return "GET", f"/api/rooms?{urlencode(query)}", None
    if args.command == "room":
        return "GET", f"/api/rooms/{room}", None
    if args.command == "history":
        return "GET", f"/api/rooms/{room}/history?since={args.since}&limit={args.limit}", None
    if args.command.startswith("disconnect-"):
        kind = "users" if args.command == "disconnect-user" else "connections"
        return ("POST", f"/api/{kind}/{quote(args.id, safe='')}/disconnect",
                {"code": args.code, "reason": args.reason})
    return "GET", "/api/info", None


def firstKey(path: Path) -> str:
    for line in path.read_text("utf-8").splitlines():
        key = line.split("#", 1)[0].strip()
        if key:
            return key
    raise SystemExit(f"{path}: no key in it")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    method, path, body = request(args)
    call = urllib.request.Request(
        args.url.rstrip("/") + path, method=method,
        data=json.dumps(body).encode("utf-8") if body is not None else None,
        headers={"Authorization": f"Bearer {firstKey(args.key_file)}",
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(call, timeout=30) as answer:
            print(answer.read().decode("utf-8"))
            return 0
    except urllib.error.HTTPError as e:
        print(f"{e.code}: {e.read().decode('utf-8', 'replace')}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{args.url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
