"""
Timestamps as the wire protocols carry them.
"""

from datetime import datetime, timezone


def isoUTC(seconds: float) -> str:
    """
    Format POSIX C{seconds} as ISO 8601 UTC with milliseconds, e.g.
    C{2026-11-23T18:44:48.123Z}.
    """
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
