"""HTTP-date parsing (RFC 9110 section 5.6.7), shared by both cores.

Only ``If-Modified-Since`` against ``Last-Modified`` needs it, off the hot path,
so one implementation serves both twins and they cannot disagree about a date.
"""

from __future__ import annotations

import calendar
import re
import time
from typing import Optional

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_TIME = r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
_MONTH = r"(?P<month>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
# IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
_IMF = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (?P<day>[0-9]{2}) " + _MONTH + r" (?P<year>[0-9]{4}) " + _TIME + r" GMT"
)
# rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT
_RFC850 = re.compile(
    r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), "
    r"(?P<day>[0-9]{2})-" + _MONTH + r"-(?P<year>[0-9]{2}) " + _TIME + r" GMT"
)
# asctime-date: Sun Nov  6 08:49:37 1994
_ASCTIME = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) " + _MONTH + r" (?P<day>[ 0-9][0-9]) " + _TIME + r" (?P<year>[0-9]{4})"
)


def parse_http_date(value: str) -> Optional[int]:
    """Seconds since the epoch for a valid HTTP-date, ``None`` for anything else.

    The day name is checked for form only, as most servers do; the calendar
    fields must make a real date.
    """
    if len(value) > 64:
        return None
    value = value.strip(" \t")
    match = _IMF.fullmatch(value) or _ASCTIME.fullmatch(value)
    if match is not None:
        year = int(match.group("year"))
    else:
        match = _RFC850.fullmatch(value)
        if match is None:
            return None
        # RFC 9110: a two-digit year more than 50 years in the future means the
        # most recent past year with those digits.
        year = 1900 + int(match.group("year"))
        this_year = time.gmtime().tm_year
        while year + 100 <= this_year + 50:
            year += 100
    month = _MONTHS[match.group("month")]
    day = int(match.group("day").strip())
    hour, minute, second = (int(match.group(name)) for name in ("hour", "minute", "second"))
    if not (1 <= year and 1 <= day <= calendar.monthrange(year, month)[1] and hour < 24 and minute < 60 and second < 61):
        return None
    return calendar.timegm((year, month, day, hour, minute, min(second, 59), 0, 0, 0))
