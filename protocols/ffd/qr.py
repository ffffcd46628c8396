"""The receipt's QR code (tag 1196): the string buyers scan to check a receipt with the FNS.

Fact sheet ``fn-ffd-ofd.md`` §5.4: ``t=YYYYMMDDTHHMM[SS]&s=<rubles.kopecks>&fn=<FN number>
&i=<FD number (1040)>&fp=<fiscal sign (1077, decimal)>&n=<operation type (1054)>``.

Choices:

* `qr_string` always writes seconds (``T%H%M%S``).  Public formatters use both forms; with
  seconds the real example ``t=20170806T215500&s=500.00&fn=9720000100000101&i=10001&fp=775000138
  &n=1`` round-trips byte for byte.  Microseconds are not written.
* `parse_qr` reads both ``T%H%M`` and ``T%H%M%S``, the keys in any order, a sum with 0–2
  decimals, and ``n`` defaulting to 1 when it is missing (as receivers do).  Unknown keys are
  ignored; a repeated key, a missing required key or a malformed value raises `QrError`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from ..errors import CodecError
from .sign import fiscal_sign_from_tlv
from .tlv import TlvList, find


class QrError(CodecError):
    """A QR string (tag 1196) cannot be built or parsed."""


_MAX_U32 = 0xFFFFFFFF
_DIGITS = re.compile(r"[0-9]+")
_SUM = re.compile(r"([0-9]+)(?:\.([0-9]{1,2}))?")
_TIME_FORMATS = {13: "%Y%m%dT%H%M", 15: "%Y%m%dT%H%M%S"}


@dataclass(frozen=True, slots=True)
class QrData:
    """What the QR code says about a receipt."""

    when: dt.datetime  # naive wall-clock date-time of the receipt (1012)
    total: int  # kopecks (1020)
    fn: str  # FN number (1041), digits
    fd: int  # fiscal document number (1040)
    fp: int  # fiscal sign (1077, as printed)
    operation: int  # 1054: 1 приход, 2 возврат прихода, 3 расход, 4 возврат расхода

    def __post_init__(self) -> None:
        if not isinstance(self.when, dt.datetime) or self.when.tzinfo is not None:
            raise QrError(f"QR date-time must be a naive datetime, got {self.when!r}")
        if not 1 <= self.when.year <= 9999:  # pragma: no cover - datetime enforces it
            raise QrError(f"QR date-time {self.when} is out of range")
        for name, low, high in (
            ("total", 0, None),
            ("fd", 0, _MAX_U32),
            ("fp", 0, _MAX_U32),
            ("operation", 1, 4),
        ):
            number = getattr(self, name)
            if isinstance(number, bool) or not isinstance(number, int):
                raise QrError(f"QR field {name} must be an int, got {number!r}")
            if number < low or (high is not None and number > high):
                upper = "" if high is None else f"..{high}"
                raise QrError(f"QR field {name} = {number} is out of range {low}{upper}")
        if not isinstance(self.fn, str) or not _DIGITS.fullmatch(self.fn):
            raise QrError(f"QR field fn must be the FN number in digits, got {self.fn!r}")


def qr_string(data: QrData) -> str:
    """The QR text for ``data``, always with seconds in ``t``."""
    rubles, kopecks = divmod(data.total, 100)
    return (
        f"t={data.when:%Y%m%dT%H%M%S}&s={rubles}.{kopecks:02d}&fn={data.fn}"
        f"&i={data.fd}&fp={data.fp}&n={data.operation}"
    )


def qr_data_of_document(body: TlvList) -> QrData:
    """The QR fields of a receipt or correction from its own tags: 1012, 1020, 1041, 1040, 1077
    (printed form: big-endian bytes 2..5) and 1054.  ``body`` is the document's tag list (the
    inside of its STLV).  A missing or mistyped tag raises `QrError` naming it."""
    when, sign, fn = find(body, 1012), find(body, 1077), find(body, 1041)
    if not isinstance(when, dt.datetime):
        raise QrError(f"the document has no date-time (tag 1012) for the QR string: {when!r}")
    if not isinstance(sign, bytes):
        raise QrError(f"the document has no fiscal sign (tag 1077) for the QR string: {sign!r}")
    if not isinstance(fn, str):
        raise QrError(f"the document has no FN number (tag 1041) for the QR string: {fn!r}")
    return QrData(
        when=when,
        total=_int_tag(body, 1020),
        fn=fn,
        fd=_int_tag(body, 1040),
        fp=fiscal_sign_from_tlv(sign),
        operation=_int_tag(body, 1054),
    )


def _int_tag(body: TlvList, tag: int) -> int:
    value = find(body, tag)
    if isinstance(value, bool) or not isinstance(value, int):
        raise QrError(f"the document has no tag {tag} for the QR string (got {value!r})")
    return value


def qr_of_document(body: TlvList) -> str:
    """The QR string of a receipt from its own tags: the one function the printed tape, the
    driver's result and every rendering share (through `qr_string`)."""
    return qr_string(qr_data_of_document(body))


def parse_qr(text: str) -> QrData:
    """Parse a receipt QR string; raises `QrError` saying what is wrong."""
    if not isinstance(text, str):
        raise QrError(f"a QR string is text, got {type(text).__name__}")
    fields: dict[str, str] = {}
    for part in text.strip().split("&"):
        key, sep, value = part.partition("=")
        if not sep:
            raise QrError(f"QR part {part!r} is not key=value (in {text!r})")
        if key in fields:
            raise QrError(f"QR key {key!r} appears twice (in {text!r})")
        fields[key] = value
    missing = [key for key in ("t", "s", "fn", "i", "fp") if key not in fields]
    if missing:
        raise QrError(f"QR string lacks {', '.join(missing)} (in {text!r})")
    return QrData(
        when=_parse_time(fields["t"]),
        total=_parse_sum(fields["s"]),
        fn=fields["fn"],
        fd=_parse_number("i", fields["i"]),
        fp=_parse_number("fp", fields["fp"]),
        operation=_parse_number("n", fields.get("n", "1")),
    )


def _parse_time(value: str) -> dt.datetime:
    layout = _TIME_FORMATS.get(len(value))
    if layout is None or not value.replace("T", "", 1).isdigit() or value[8:9] != "T":
        raise QrError(f"QR date-time t={value!r} is not YYYYMMDDTHHMM or YYYYMMDDTHHMMSS")
    try:
        return dt.datetime.strptime(value, layout)
    except ValueError:
        raise QrError(f"QR date-time t={value!r} is not a valid date and time") from None


def _parse_sum(value: str) -> int:
    match = _SUM.fullmatch(value)
    if match is None:
        raise QrError(f"QR sum s={value!r} is not rubles with up to 2 decimals, like 500.00")
    rubles, kopecks = match.group(1), (match.group(2) or "").ljust(2, "0")
    return int(rubles) * 100 + int(kopecks)


def _parse_number(key: str, value: str) -> int:
    if not _DIGITS.fullmatch(value):
        raise QrError(f"QR field {key}={value!r} is not a decimal number")
    return int(value)
