"""The classic commands' texts as a wider model takes them: 40 bytes or more (issue #15).

Golden frames: what pyshtrih 2.0.6 (PyPI; oleg-golovanov/pyshtrih) sends as a ``ShtrihM01F``:
``pyshtrih/commands.py`` (``sale``, ``return_sale``, ``close_check``, ``print_string``,
``discount``, ``allowance``, ``repeat``) with its texts from ``misc.prepare_string(text, 48)`` --
cp1251, padded with 00 to the model's ``DEFAULT_MAX_LENGTH`` of 48 (``device.py``) -- and the frame
of ``protocol.command`` (STX, LEN, code, 4-byte password, LRC over LEN..data).  Passwords: the
cashier's 1 (``DEFAULT_CASHIER_PASSWORD``).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from kkt.protocols.errors import CodecError
from kkt.protocols.shtrih import classic
from kkt.protocols.shtrih.frame import decode_frame, encode_frame
from kkt.protocols.shtrih.message import Request, decode_request
from kkt.protocols.shtrih.models import M01F, M02F, line_width, model_named


def _frame(head: str, text: bytes, width: int, lrc: str) -> bytes:
    """``head`` up to the text, the text padded with 00 to ``width``, then the LRC."""
    return bytes.fromhex(head) + text.ljust(width, b"\x00") + bytes.fromhex(lrc)


HLEB = "Хлеб".encode("cp1251")
NADBAVKA = "Надбавка".encode("cp1251")
GOLDEN: list[tuple[bytes, Request[classic.OperatorAnswer]]] = [
    (  # sale(("Хлеб", 1000, 4500), department_num=1, tax1=1): LEN 44h = 20 + 48
        _frame("02 44 80 01 00 00 00 E8 03 00 00 00 94 11 00 00 00 01 01 00 00 00", HLEB, 48, "91"),
        classic.Sale(1, Decimal(1), 4500, 1, (1, 0, 0, 0), "Хлеб"),
    ),
    (  # return_sale(("Хлеб", 1000, 4500)): department 0, no taxes
        _frame("02 44 82 01 00 00 00 E8 03 00 00 00 94 11 00 00 00 00 00 00 00 00", HLEB, 48, "93"),
        classic.SaleReturn(1, Decimal(1), 4500, 0, (0, 0, 0, 0), "Хлеб"),
    ),
    (  # print_string("Итого"): flags 3 (journal and receipt), LEN 36h = 6 + 48
        _frame("02 36 17 01 00 00 00 03", "Итого".encode("cp1251"), 48, "FA"),
        classic.PrintString(1, 3, "Итого"),
    ),
    (  # discount(100): no text, 48 zero bytes
        _frame("02 3E 86 01 00 00 00 64 00 00 00 00 00 00 00 00", b"", 48, "DD"),
        classic.Discount(1, 100, (0, 0, 0, 0), ""),
    ),
    (  # allowance(250, text="Надбавка")
        _frame("02 3E 87 01 00 00 00 FA 00 00 00 00 00 00 00 00", NADBAVKA, 48, "62"),
        classic.Surcharge(1, 250, (0, 0, 0, 0), "Надбавка"),
    ),
    (bytes.fromhex("02 05 8C 01 00 00 00 88"), classic.RepeatDocument(1)),  # repeat()
]  # fmt: skip

# close_check(5000): cash 5000, three zero payments, discount 0, no taxes, 48 zero bytes of text
CLOSE = _frame("02 4F 85 01 00 00 00 88 13 00 00 00" + " 00" * 21, b"", 48, "50")


@pytest.mark.parametrize(("frame", "request_"), GOLDEN, ids=lambda v: getattr(v, "CODE", ""))
def test_pyshtrih_frames_decode(frame: bytes, request_: Request[classic.OperatorAnswer]) -> None:
    assert decode_request(decode_frame(frame)) == request_


def test_pyshtrih_close_frame_decodes() -> None:
    request = decode_request(decode_frame(CLOSE))
    assert request == classic.CloseReceipt(1, (5000, 0, 0, 0), 0, (0, 0, 0, 0), "")


def test_short_texts_are_sent_as_the_classic_forty_bytes() -> None:
    # What this driver sends for a text that fits: the protocol's 40-byte field (fact sheet §2.1).
    payload = classic.PrintString(1, 2, "Итого").encode()
    assert len(payload) == 1 + 4 + 1 + 40
    assert decode_request(payload) == classic.PrintString(1, 2, "Итого")


def test_a_wide_text_round_trips_whole() -> None:
    text = "Ш" * 60  # longer than any line: the field carries it, the register cuts it
    request = classic.Sale(1, Decimal(2), 100, 1, (0, 0, 0, 0), text)
    assert decode_request(encode_frame(request.encode())[2:-1]) == request


@pytest.mark.parametrize("size", [0, 39])
def test_a_text_field_under_forty_bytes_is_refused(size: int) -> None:
    # A device answers 33h to a bad length; decode_request raises CodecError, which it is.
    payload = bytes.fromhex("17 01 00 00 00 02") + b"x" * size
    with pytest.raises(CodecError, match="shorter than the 40"):
        decode_request(payload)


def test_bold_line_request() -> None:
    # 12h has 17h's layout (fact sheet §2.3: pwd, flags, text)
    payload = bytes.fromhex("12 1E 00 00 00 02") + "Итого".encode("cp1251").ljust(40, b"\0")
    assert decode_request(payload) == classic.PrintBoldString(30, 2, "Итого")


def test_one_model_table() -> None:
    assert (M01F.number, M01F.line_width, M01F.bold_width) == (250, 48, 24)
    assert (M02F.number, M02F.name) == (250, "ШТРИХ-М-02Ф")
    assert line_width(250) == 48 and line_width(0x7F) == 40  # a model not known: the classic 40
    assert model_named("ШТРИХ-М-02Ф") is M02F
    with pytest.raises(ValueError, match="choose one of: ШТРИХ-М-01Ф, ШТРИХ-М-02Ф"):
        model_named("ШТРИХ-ЛАЙТ-01Ф")
