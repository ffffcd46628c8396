"""ATOL command layer: public vectors, layouts byte by byte, round trips of every request and
answer, error replies, malformed blocks.

Vectors named "dump" are bytes seen on a wire; vectors named "encoder" are what a public encoder
writes for the given arguments, worked out from its code (each names repository and path).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from construct import Construct, FormatField
from hypothesis import assume, given
from hypothesis import strategies as st
from kkt.protocols.atol.charset import FixedText, TailText, decode_text
from kkt.protocols.atol.commands import (
    TYPED_REGISTERS,
    Answer,
    Beep,
    BeginItem,
    CancelReceipt,
    CashIn,
    CashInDrawer,
    CashOut,
    CloseReceipt,
    Cut,
    DeviceType,
    Done,
    EndItem,
    EnterMode,
    ExitMode,
    FnDocumentData,
    FnDocumentSize,
    FnOfdStatus,
    FnSerial,
    FnShift,
    FnStatus,
    FnValidity,
    FnVersion,
    GetCashInDrawer,
    GetDeviceType,
    GetFnDocumentData,
    GetFnDocumentSize,
    GetFnOfdStatus,
    GetFnSerial,
    GetFnShift,
    GetFnStatus,
    GetFnValidity,
    GetFnVersion,
    GetStateCode,
    GetStatus,
    LastDocument,
    OpenReceipt,
    OpenShift,
    Payment,
    PaymentAnswer,
    PrintFnDocument,
    PrintLine,
    ReadLastDocument,
    ReadLastReceipt,
    ReadRegister,
    ReadShiftState,
    RegisterItem,
    RegisterValue,
    Report,
    Request,
    SetDate,
    SetDateTime,
    ShiftState,
    StateCode,
    Status,
    UnknownCommand,
    WriteTlv,
    ZReport,
    answer_header,
    decode_error,
    decode_request,
    encode_answer,
    encode_error,
    reply_is_error,
    request_types,
)
from kkt.protocols.atol.errors import ERRORS, AtolDeviceError, device_error
from kkt.protocols.atol.modes import (
    NO_PRINT,
    NO_PRINT_ATOL4J,
    Mode,
    PaymentType,
    ReceiptType,
    StatusFlags,
    join_mode,
    split_mode,
)
from kkt.protocols.errors import CodecError, DeviceError
from kkt.protocols.fields import Bcd, Bool, Bytes, Stamp, Tail, TailBytes, bcd_max
from kkt.protocols.message import wire_fields

ALL_REQUESTS = sorted(request_types().values(), key=lambda c: (c.CODE, c.PREFIX))
REQUEST_IDS = [f"{c.CODE:02X}{c.PREFIX.hex()}-{c.__name__}" for c in ALL_REQUESTS]


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# -- golden vectors: requests ---------------------------------------------------------------------

REQUEST_VECTORS: list[tuple[str, Request[Any], str]] = [
    # Zzzzipper/projects firmware-usbhost/common/fiscal_register/atol/AtolProtocol.h, device dump:
    # the Add packet FE 06 00 07 C1 01 02 [00 00 A5] 8D carries this block.
    ("00 00 A5", GetDeviceType(0), "dump: Zzzzipper AtolProtocol.h (Add of A5h)"),
    # lazersib/multimag common/cri/atol/atol.php, encoder: cmdGetState / cmdGetStateCode /
    # cmdEnterToMode(1, 30) / cmdExitFromMode / cmdOpenCheck(1, no_print=true) /
    # cmdCloseCheck(1, 0) / cmdBreakCheck / cmdInCash(100.00) / cmdXREport(1) / cmdZREport.
    ("00 00 3F", GetStatus(0), "encoder: MultiMag cmdGetState"),
    ("00 00 45", GetStateCode(0), "encoder: MultiMag cmdGetStateCode"),
    ("00 00 56 01 00 00 00 30", EnterMode(0, Mode.REGISTRATION, 30), "encoder: MultiMag"),
    ("00 00 48", ExitMode(0), "encoder: MultiMag cmdExitFromMode"),
    ("00 00 92 04 01", OpenReceipt(0, NO_PRINT, ReceiptType.SELL), "encoder: MultiMag"),
    ("00 00 4A 00 01 00 00 00 00 00", CloseReceipt(0, 0, PaymentType.CASH, 0), "encoder: MultiMag"),
    ("00 00 59", CancelReceipt(0), "encoder: MultiMag cmdBreakCheck"),
    ("00 00 49 00 00 00 01 00 00", CashIn(0, 0, 10000), "encoder: MultiMag cmdInCash(100)"),
    ("00 00 67 01", Report(0, 1), "encoder: MultiMag cmdXREport(1)"),
    ("00 00 5A", ZReport(0), "encoder: MultiMag cmdZREport"),
    # kurbatov/atol4j src/main/java/com/github/kurbatov/atol4j/command/**, encoder (atol4j's
    # CashRegister puts the access password in front): OpenShiftCommand(false),
    # OpenBillCommand(INCOME, print=false, test=false), CashPaymentCommand(5000, false),
    # RemittanceCommand(12345, CASHLESS, false), CutCommand(full) / (partial),
    # PrintStringCommand("АТОЛ"), SetDateCommand(15, 3, 24), SetDateTimeCommand(15, 3, 24, 12, 30,
    # 45), fiscal/ShiftStateRequest, FiscalDataExchangeStateRequest, FiscalMemoryNumberRequest,
    # FiscalMemoryExpirationRequest, RegisterValueRequest(0x34).
    ("00 00 9A 00", OpenShift(0), "encoder: atol4j OpenShiftCommand"),
    (
        "00 00 92 02 01",
        OpenReceipt(0, NO_PRINT_ATOL4J, ReceiptType.SELL),
        "encoder: atol4j OpenBillCommand (its don't-print bit)",
    ),
    ("00 00 4F 00 00 00 00 50 00", CashOut(0, 0, 5000), "encoder: atol4j CashPaymentCommand"),
    ("00 00 99 00 02 00 00 01 23 45", Payment(0, 0, PaymentType.ELECTRONIC, 12345), "atol4j"),
    ("00 00 75 00", Cut(0, partial=False), "encoder: atol4j CutCommand(full=true)"),
    ("00 00 75 01", Cut(0, partial=True), "encoder: atol4j CutCommand(full=false)"),
    ("00 00 4C 80 92 8E 8B", PrintLine(0, "АТОЛ"), "encoder: atol4j PrintStringCommand"),
    ("00 00 64 15 03 24", SetDate(0, dt.date(2024, 3, 15)), "encoder: atol4j SetDateCommand"),
    (
        "00 00 ED 15 03 24 12 30 45",
        SetDateTime(0, dt.datetime(2024, 3, 15, 12, 30, 45)),
        "encoder: atol4j SetDateTimeCommand",
    ),
    ("00 00 A4 10", GetFnShift(0), "encoder: atol4j ShiftStateRequest"),
    ("00 00 A4 20", GetFnOfdStatus(0), "encoder: atol4j FiscalDataExchangeStateRequest"),
    ("00 00 A4 31", GetFnSerial(0), "encoder: atol4j FiscalMemoryNumberRequest"),
    ("00 00 A4 32", GetFnValidity(0), "encoder: atol4j FiscalMemoryExpirationRequest"),
    # Zzzzipper AtolCommandLayer.cpp, encoder: gotoStateRegisterRead (register 33h),
    # RegisterReadRequest for 34h, FN105CheckAddStartRequest {flags 0, param 1, reserved 0},
    # FSDocSizeRequest for document 42, a bare DocData request.
    ("00 00 91 33 00 00", ReadLastReceipt(0), "encoder: Zzzzipper gotoStateLastSale (33h)"),
    ("00 00 91 34 00 00", ReadLastDocument(0), "encoder: Zzzzipper RegisterReadRequest 34h"),
    ("00 00 EA 00 01 00", BeginItem(0, 0, 1), "encoder: Zzzzipper FN105CheckAddStart"),
    # Unact/kkm lib/kkm/device_interface.rb at f2ed5a8, encoder: cheque_data(42) sends "A4 45"
    # and the number's 4 bytes reversed (little-endian); Zzzzipper's FSDocSizeRequest declares
    # them big-endian in code nothing reaches (gotoStateDocSize has no caller).
    ("00 00 A4 45 2A 00 00 00", GetFnDocumentSize(0, 42), "encoder: Unact/kkm cheque_data"),
    # Unact/kkm, encoder: fn_status / fn_version (Command::FN_STATUS 'A4 30', FN_VERSION 'A4 33').
    ("00 00 A4 30", GetFnStatus(0), "encoder: Unact/kkm fn_status"),
    ("00 00 A4 33", GetFnVersion(0), "encoder: Unact/kkm fn_version"),
    ("00 00 A4 46", GetFnDocumentData(0), "encoder: Zzzzipper FSSubcommand_DocData"),
    # RPiVendApp CashDesk.cs (C#, the UWP app of fact sheet §5.1; source repository unknown),
    # encoder: GetStageState / GetKKTInformation read register 12h with the parameters 00 01.
    ("00 00 91 12 00 01", ReadShiftState(0, 0, 1), "encoder: RPiVendApp GetStageState"),
    # lazersib/multimag atol.php, encoder: cmdBeep (actionBeep sends it three times),
    # cmdRePrintDocument(5) (actionPrintFN, after entering mode 6 with password 30).
    ("00 00 47", Beep(0), "encoder: MultiMag cmdBeep"),
    ("00 00 AB 00 00 00 00 05", PrintFnDocument(0, 5), "encoder: MultiMag cmdRePrintDocument"),
    # The access password, 2 bytes BCD (fact sheet §2.1; MultiMag setPassword -> intToBCD(p, 2)).
    ("12 34 3F", GetStatus(1234), "encoder: MultiMag setPassword(1234)"),
]


@pytest.mark.parametrize(
    ("hex_", "request_", "source"), REQUEST_VECTORS, ids=[v[2] for v in REQUEST_VECTORS]
)
def test_request_vectors(hex_: str, request_: Request[Any], source: str) -> None:
    assert request_.encode() == h(hex_)
    assert decode_request(h(hex_)) == request_


def test_multimag_open_shift_with_its_zero_byte() -> None:
    # lazersib/multimag atol.php cmdNewSession sends 9A flags 00: the zero reads as an empty text.
    assert decode_request(h("00 00 9A 00 00")) == OpenShift(0, 0, "")


def test_register_item_is_104_bytes_as_multimag_builds_it() -> None:
    # lazersib/multimag atol.php cmdRegisterNomenclature("Товар", 10.50, 2, tax=0), section 1:
    # E6 flags name[64] price BCD6 count BCD5 type sign size BCD6 tax section + 17 zero bytes.
    name = "Товар"
    expected = (
        h("00 00 E6 00")
        + decode_text_bytes(name).ljust(64, b"\x00")
        + h("00 00 00 00 10 50")
        + h("00 00 00 20 00")
        + h("00 00")
        + h("00 00 00 00 00 00")
        + h("00 01")
        + bytes(17)
    )
    item = RegisterItem(0, 0, name, 1050, 2000, 0, 0, 0, 0, 1)
    assert len(expected) - 2 == 104  # fact sheet §2.3: the 104-byte command (without password)
    assert item.encode() == expected
    assert decode_request(expected) == item


def test_register_item_ignores_zzzzipper_text_in_the_tail() -> None:
    # Zzzzipper CheckAddRequest fills the last 17 bytes with text[16] + reserved: read, ignored.
    item = RegisterItem(0, 0, "X", 100, 1000, 0, 0, 0, 0, 1)
    block = item.encode()[:-17] + b"ABC".ljust(16, b"\x00") + b"\x00"
    assert decode_request(block) == item


def test_end_item_layout() -> None:
    # Zzzzipper AtolCommandLayer.cpp gotoStateFN105CheckAddEnd: flags 0, price, quantity 1000,
    # value = price, then tax, tax sum, section, subject, method, discount, reserved[2], name.
    item = EndItem(0, 0, 4500, 1000, 4500, 6, 0, 1, 1, 4, 0, 0, "Кофе")
    expected = (
        h("00 00 EB 00")
        + h("00 00 00 00 00 45 00")
        + h("00 00 00 10 00")
        + h("00 00 00 00 00 45 00")
        + h("06")
        + h("00 00 00 00 00 00 00")
        + h("01 01 04 00")
        + h("00 00 00 00 00 00 00")
        + h("00 00")
        + decode_text_bytes("Кофе")
    )
    assert item.encode() == expected
    assert decode_request(expected) == item


def test_write_tlv_chosen_layout() -> None:
    # Unverified (no public encoder): E8 flags tlv... -- tag 1212 (04BC), length 1, value 1.
    request_ = WriteTlv(0, 0, h("BC 04 01 00 01"))
    assert request_.encode() == h("00 00 E8 00 BC 04 01 00 01")
    assert decode_request(request_.encode()) == request_


def decode_text_bytes(text: str) -> bytes:
    from kkt.protocols.atol.charset import encode_text

    return encode_text(text)


# -- golden vectors: answers ----------------------------------------------------------------------


def test_device_type_dump() -> None:
    # Zzzzipper AtolProtocol.h DeviceInfoResponse comment (fact sheet §2.3, a real "Казначей ФА").
    reply = h("00 01 01 4C 10 00 03 00 00 21 95 8A A0 A7 AD A0 E7 A5 A9 20 94 80")
    expected = DeviceType(
        protocol=1,
        device_type=1,
        model=0x4C,
        mode=0x1000,
        version=h("03 00 00 21 95"),
        name="Казначей ФА",
    )
    assert GetDeviceType(0).decode_answer(reply) == expected
    assert encode_answer(0xA5, expected) == reply


def test_done_dump() -> None:
    # kurbatov/atol4j TransportProtocolV3Test: the async result A6 57 [55 00 00].
    assert CancelReceipt(0).decode_answer(h("55 00 00")) == Done()
    assert encode_answer(0x59, Done()) == h("55 00 00")


def test_status_layout() -> None:
    # Fact sheet §2.4 (atol4j DeviceStateRequest, MultiMag requestGetState, Zzzzipper
    # StatusResponse): no public dump, the bytes are built from the agreed layout.
    reply = h(
        "44 05 01 24 03 15 12 30 45 4B 00 12 34 56 4D 03 00 01 00 07 00 12 01 00 00 01 00 00 02 04"
    )
    assert len(reply) == 30
    status = GetStatus(0).decode_answer(reply)
    assert status == Status(
        cashier=5,
        hall_number=1,
        when=dt.datetime(2024, 3, 15, 12, 30, 45),
        flags=0x4B,
        serial=123456,
        model=77,
        firmware=0x0300,
        mode=0x01,
        receipt_number=7,
        shift_number=12,
        receipt_state=1,
        receipt_sum=10000,
        decimal_point=2,
        interface=4,
    )
    flags = StatusFlags(status.flags)
    assert StatusFlags.SHIFT_OPEN in flags and StatusFlags.FN_ACTIVE in flags
    assert StatusFlags.DRAWER_OPEN not in flags
    assert split_mode(status.mode) == (Mode.REGISTRATION, 0)
    assert encode_answer(0x3F, status) == reply


def test_status_without_a_clock_reads_none() -> None:
    reply = h("44 00 00" + " 00" * 6 + " 00" * 21)
    assert GetStatus(0).decode_answer(reply).when is None


def test_state_code_layout() -> None:
    # atol4j DeviceStateCodeRequest / Zzzzipper PrinterStatusResponse: 55 mode flags.
    assert GetStateCode(0).decode_answer(h("55 21 01")) == StateCode(mode=0x21, flags=0x01)
    assert split_mode(0x21) == (1, 2)


def test_payment_answer_layout() -> None:
    # Fact sheet §2.3: 55 err ext remainder BCD5 change BCD5.
    reply = h("55 00 00 00 00 00 00 00 00 00 00 05 00")
    assert Payment(0, 0, 1, 10500).decode_answer(reply) == PaymentAnswer(0, 500)


def test_last_document_layout() -> None:
    # Zzzzipper RegisterReadResponse: 55 err FD BCD5, type, total BCD7, DD MM YY hh mm, FP BCD5,
    # 3 reserved (stateRegisterReadResponse reads datetime[0] as the day, [2] as the year).
    reply = h("55 00 00 00 00 01 23 03 00 00 00 00 00 15 00 15 03 24 12 30 12 34 56 78 90 00 00 00")
    document = ReadLastDocument(0).decode_answer(reply)
    assert document == LastDocument(
        number=123,
        document_type=3,
        total=1500,
        when=dt.datetime(2024, 3, 15, 12, 30),
        fiscal_sign=1234567890,
    )
    assert encode_answer(0x91, document) == reply
    # The raw view of the same register, as a driver asking ReadRegister(0x34) gets it.
    assert ReadRegister(0, 0x34).decode_answer(reply) == RegisterValue(reply[2:])


def test_last_receipt_is_register_33_in_the_last_document_layout() -> None:
    # Zzzzipper/projects firmware-usbhost/common/fiscal_register/atol/AtolCommandLayer.cpp
    # gotoStateLastSale sends 91 33 00 00 and stateLastSaleResponse parses the reply with
    # AtolProtocol.h RegisterReadResponse: the same 28 bytes as register 34h's.
    reply = h("55 00 00 00 00 01 23 01 00 00 00 00 00 15 00 15 03 24 12 30 12 34 56 78 90 00 00 00")
    receipt = ReadLastReceipt(0).decode_answer(reply)
    assert receipt == LastDocument(123, 1, 1500, dt.datetime(2024, 3, 15, 12, 30), 1234567890)
    assert encode_answer(0x91, receipt) == reply
    assert decode_request(ReadRegister(0, 0x33).encode()) == ReadLastReceipt(0)
    # Other parameters stay a raw register read.
    assert decode_request(h("00 00 91 33 00 01")) == ReadRegister(0, 0x33, 0, 1)


def test_shift_state_layout() -> None:
    # RPiVendApp CashDesk.cs (source repository unknown) StageProperties: a 10-byte task reply
    # A3 55 err state DD MM YY hh mm ss (BCD) -- this codec gets it without the buffer's A3.
    reply = h("55 00 01 15 03 24 09 05 30")
    state = ReadShiftState(0, 0, 1).decode_answer(reply)
    assert state == ShiftState(1, dt.datetime(2024, 3, 15, 9, 5, 30))
    assert encode_answer(0x91, state) == reply
    # Before the first shift the emulator sends zeros: no date-time.
    assert ReadShiftState(0).decode_answer(h("55 00 00 00 00 00 00 00 00")) == ShiftState(0, None)
    assert decode_request(ReadRegister(0, 0x12, 0, 1).encode()) == ReadShiftState(0, 0, 1)
    with pytest.raises(CodecError):
        ReadShiftState(0).decode_answer(h("55 00 01 15 03 24 09 05"))  # cut short


def test_fn_status_and_version_at_the_offsets_unact_kkm_reads() -> None:
    # Unact/kkm lib/kkm/device_interface.rb at f2ed5a8: fn_status reads phase res[2], document
    # res[3], data received res[4], shift open res[5], flags res[6] and the FN serial res[12..27]
    # of the whole reply; fn_version the version res[2..17] and res[18] == 0 for debug firmware.
    serial = b"9999078900000961"
    reply = h("55 00 03 00 00 01 08 18 03 0F 0C 1E") + serial + h("2A 00 00 00")
    assert reply[12:28] == serial
    status = GetFnStatus(0).decode_answer(reply)
    assert (status.phase, status.shift_open, status.warnings, status.serial) == (
        3,
        True,
        8,
        serial.decode(),
    )
    assert (status.last_document_when, status.last_document) == (
        dt.datetime(2024, 3, 15, 12, 30),
        42,
    )
    assert encode_answer(0xA4, status) == reply
    version = b"fn debug v 2.13"
    reply = b"\x55\x00" + version + b"\x00" + b"\x00"
    assert GetFnVersion(0).decode_answer(reply) == FnVersion(version.decode(), False)


def test_last_document_drops_seconds() -> None:
    document = LastDocument(1, 1, 100, dt.datetime(2024, 1, 2, 3, 4, 59), 7)
    decoded = ReadLastDocument(0).decode_answer(encode_answer(0x91, document))
    assert decoded.when == dt.datetime(2024, 1, 2, 3, 4)


def test_fn_answers_layouts() -> None:
    # atol4j fiscal/*Request: data after 55 err (r[2]...).
    assert GetFnShift(0).decode_answer(h("55 00 01 0C 00 05 00")) == FnShift(True, 12, 5)
    assert GetFnShift(0).decode_answer(h("55 00 00 00 00 00 00")) == FnShift(False, 0, 0)
    ofd = GetFnOfdStatus(0).decode_answer(h("55 00 03 00 02 00 2A 00 00 00 18 03 0F 0C 1E"))
    assert ofd == FnOfdStatus(3, False, 2, 42, dt.datetime(2024, 3, 15, 12, 30))
    serial = GetFnSerial(0).decode_answer(b"\x55\x00" + b"9999078900000961")
    assert serial == FnSerial("9999078900000961")
    validity = GetFnValidity(0).decode_answer(h("55 00 1A 07 1F 0B 01"))
    assert validity == FnValidity(dt.date(2026, 7, 31), 11, 1)
    # 55 err docType docSize, 2 bytes each in the FN's order (little-endian; see commands.py).
    size = GetFnDocumentSize(0, 42).decode_answer(h("55 00 03 00 2C 01"))
    assert size == FnDocumentSize(3, 300)
    # Unact/kkm cheque_data reads each 46h answer after 55 err as one TLV: tag and length
    # little-endian (tlv[0..1].reverse, tlv[2..3].reverse), then the value.
    data = GetFnDocumentData(0).decode_answer(h("55 00 11 04 10 00 30 31 32 33 34 35 36 37"))
    assert data == FnDocumentData(h("11 04 10 00") + b"01234567")


# -- error replies --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_REQUESTS, ids=REQUEST_IDS)
def test_error_reply_decodes_to_device_error(cls: type[Request[Any]]) -> None:
    request_ = example(cls)
    if cls.CODE == 0xA5:
        reply = encode_error(0xA5, 0x68)
        assert reply == h("68")
        ext = 0
    else:
        reply = encode_error(cls.CODE, 0xEE, 0x12)
        assert reply == h("55 EE 12")
        ext = 0x12
    if cls.CODE == 0x45:
        # 45h's answer has the error reply's shape: only the transport can say it is one.
        assert not reply_is_error(0x45, reply)
        error = decode_error(0x45, reply)
    else:
        assert reply_is_error(cls.CODE, reply)
        with pytest.raises(AtolDeviceError) as caught:
            request_.decode_answer(reply)
        error = caught.value
    assert isinstance(error, DeviceError)
    assert error.code == (0x68 if cls.CODE == 0xA5 else 0xEE)
    assert error.ext == ext
    assert error.command == cls.CODE


def test_error_reply_without_ext_byte() -> None:
    # 91h and A4h answer 55 err data: an error may come without the extended byte.
    with pytest.raises(AtolDeviceError) as caught:
        GetFnSerial(0).decode_answer(h("55 DA"))
    assert (caught.value.code, caught.value.ext, caught.value.command) == (0xDA, 0, 0xA4)


def test_status_error_reply() -> None:
    # 3Fh answers 44...; an error comes as 55 err ext.
    with pytest.raises(AtolDeviceError, match="wrong password"):
        GetStatus(0).decode_answer(h("55 8C 00"))


def test_error_message_says_what_to_do() -> None:
    error = device_error(0x92, 0x9C)
    assert "close it (Z report)" in str(error)
    assert not error.retry_may_help
    assert device_error(0x4A, 0xD1).retry_may_help
    assert "unknown error 0x01" in str(device_error(0x3F, 0x01))


def test_error_table_covers_the_fact_sheet() -> None:
    sheet = [0x08, 0x0A, 0x0B, 0x14, 0x1E, *range(0x66, 0x6B), 0x71, 0x72, 0x7B, 0x82, 0x86]
    sheet += [0x87, 0x88, 0x89, 0x8A, 0x8C, 0x8F, 0x97, 0x98, 0x9A, 0x9B, 0x9C, 0xA2, 0xA8, 0xAA]
    sheet += [*range(0xD1, 0xDB), *range(0xE7, 0xEC), 0xED, 0xEE, 0xF0, 0xF3, 0xF6]
    assert not [code for code in sheet if code not in ERRORS]
    assert 0 not in ERRORS


@pytest.mark.parametrize(
    ("error", "ext", "code"), [(0, 0, 0x3F), (256, 0, 0x3F), (1, 256, 0x3F), (1, 1, 0xA5)]
)
def test_encode_error_rejects_bad_values(error: int, ext: int, code: int) -> None:
    with pytest.raises(CodecError):
        encode_error(code, error, ext)


@pytest.mark.parametrize(
    ("code", "reply"), [(0x3F, "55 00 00"), (0x3F, "55 01 02 03"), (0xA5, "00")]
)
def test_decode_error_rejects_non_errors(code: int, reply: str) -> None:
    with pytest.raises(CodecError):
        decode_error(code, h(reply))


# -- malformed blocks -----------------------------------------------------------------------------


def test_unknown_codes() -> None:
    with pytest.raises(UnknownCommand) as caught:
        decode_request(h("00 00 01"))
    assert caught.value.code == 0x01 and caught.value.sub is None
    with pytest.raises(UnknownCommand) as caught:
        decode_request(h("00 00 A4 99"))
    assert (caught.value.code, caught.value.sub) == (0xA4, 0x99)
    with pytest.raises(UnknownCommand):
        decode_request(h("00 00 A4"))


@pytest.mark.parametrize("block", ["", "00", "00 00", "0A 00 3F", "00 F0 3F"])
def test_short_or_bad_password(block: str) -> None:
    with pytest.raises(CodecError):
        decode_request(h(block))


def _fixed_size(cls: type) -> int:
    return sum(
        reserved + (0 if isinstance(con, Tail) else con.sizeof())
        for _, con, reserved in wire_fields(cls)
    )


def _has_tail(cls: type) -> bool:
    return any(isinstance(con, Tail) for _, con, _ in wire_fields(cls))


@pytest.mark.parametrize("cls", ALL_REQUESTS, ids=REQUEST_IDS)
def test_truncated_and_extra_request_bytes(cls: type[Request[Any]]) -> None:
    block = example(cls).encode()
    head = 3 + len(cls.PREFIX)
    fixed = _fixed_size(cls)
    if fixed:
        with pytest.raises(CodecError):
            decode_request(block[: head + fixed - 1])
    if not _has_tail(cls):
        with pytest.raises(CodecError, match="extra byte"):
            decode_request(block + b"\x00")


@pytest.mark.parametrize("cls", ALL_REQUESTS, ids=REQUEST_IDS)
def test_truncated_and_extra_answer_bytes(cls: type[Request[Any]]) -> None:
    request_ = example(cls)
    reply = encode_answer(cls.CODE, example_answer(cls.ANSWER))
    head = len(answer_header(cls.CODE))
    fixed = _fixed_size(cls.ANSWER)
    if fixed:
        with pytest.raises(CodecError):
            request_.decode_answer(reply[: head + fixed - 1])
    if not _has_tail(cls.ANSWER):
        with pytest.raises(CodecError, match="extra byte"):
            request_.decode_answer(reply + b"\x00")
    with pytest.raises(CodecError):
        request_.decode_answer(b"")


def test_reply_of_another_kind_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match="starts with 44"):
        GetStatus(0).decode_answer(h("55 00 00"))
    with pytest.raises(CodecError, match="starts with 55 00 00"):
        ExitMode(0).decode_answer(h("44 00"))


@pytest.mark.parametrize(
    "request_",
    [
        GetStatus(10000),
        GetStatus(-1),
        EnterMode(0, 256, 30),
        EnterMode(0, 1, 100_000_000),
        CashIn(0, 0, 10**10),
        RegisterItem(0, 0, "x" * 65, 1, 1, 0, 0, 0, 0, 1),
        RegisterItem(0, 0, "Є", 1, 1, 0, 0, 0, 0, 1),
        RegisterItem(0, 0, "x", 1, 1, 0, 0, 0, 0, 100),
        PrintLine(0, "a\x00b"),
        SetDate(0, dt.date(1999, 12, 31)),
        SetDateTime(0, dt.date(2024, 1, 1)),  # type: ignore[arg-type]
        GetFnDocumentSize(0, 1 << 32),
        WriteTlv(0, 0, "text"),  # type: ignore[arg-type]
    ],
    ids=repr,
)
def test_values_no_field_holds(request_: Request[Any]) -> None:
    with pytest.raises(CodecError):
        request_.encode()


def test_bad_values_name_the_field() -> None:
    with pytest.raises(
        CodecError, match=r"^EnterMode\.mode = 256 does not fit 1 byte \(0\.\.255\)$"
    ):
        EnterMode(0, 256, 30).encode()
    with pytest.raises(
        CodecError, match=r"^CashIn\.amount = 10000000000: .* does not fit 5 BCD bytes"
    ):
        CashIn(0, 0, 10**10).encode()
    with pytest.raises(CodecError, match=r"^GetStatus\.password: .*does not fit 2 BCD bytes"):
        GetStatus(10000).encode()


def test_bad_dates_in_answers() -> None:
    with pytest.raises(CodecError, match="not a valid date"):
        GetFnValidity(0).decode_answer(h("55 00 1A 0D 01 00 00"))  # month 13
    with pytest.raises(CodecError, match="not packed BCD"):
        GetStatus(0).decode_answer(h("44 00 00 24 0A 15 00 00 00" + " 00" * 21))
    with pytest.raises(CodecError):
        decode_request(h("00 00 64 00 00 00"))  # SetDate needs a date


def test_read_register_34_decodes_as_last_document() -> None:
    assert decode_request(ReadRegister(0, 0x34).encode()) == ReadLastDocument(0)
    assert decode_request(ReadRegister(0, 0x34, 1).encode()) == ReadRegister(0, 0x34, 1)


# -- constants and modes --------------------------------------------------------------------------


def test_disputed_no_print_bit() -> None:
    assert NO_PRINT == 0x04  # Zzzzipper CheckOpenFlag_NotPrint, MultiMag cmdOpenCheck
    assert NO_PRINT_ATOL4J == 0x02  # atol4j OpenBillCommand


def test_mode_nibbles() -> None:
    assert join_mode(Mode.REGISTRATION, 3) == 0x31
    assert split_mode(0x31) == (1, 3)
    for bad in ((16, 0), (0, 16), (-1, 0)):
        with pytest.raises(CodecError):
            join_mode(*bad)
    with pytest.raises(CodecError):
        split_mode(256)


def test_class_attributes() -> None:
    for cls in ALL_REQUESTS:
        assert cls.TIMEOUT >= 10.0
        assert issubclass(cls.ANSWER, Answer)
    repeatable = {cls.__name__ for cls in ALL_REQUESTS if cls.REPEATABLE}
    assert repeatable == {
        "GetStatus",
        "GetStateCode",
        "GetDeviceType",
        "ReadRegister",
        "ReadLastDocument",
        "ReadLastReceipt",
        "ReadShiftState",
        "GetFnShift",
        "GetFnOfdStatus",
        "GetFnSerial",
        "GetFnValidity",
        "GetFnStatus",
        "GetFnVersion",
        "GetFnDocumentSize",
        "GetCashInDrawer",
    }
    # atol4j Timeout.T5
    assert (CloseReceipt.TIMEOUT, ZReport.TIMEOUT, ReadRegister.TIMEOUT) == (20.0, 40.0, 45.0)
    assert RegisterItem.TIMEOUT == BeginItem.TIMEOUT == EndItem.TIMEOUT == 50.0
    assert GetStatus.TIMEOUT == 10.0
    assert PrintFnDocument.TIMEOUT == 120.0 and not PrintFnDocument.REPEATABLE  # it prints
    assert not Beep.REPEATABLE  # harmless twice, but it is not a query
    assert CashIn.ANSWER is Done and Payment.ANSWER is PaymentAnswer


# -- round trips ----------------------------------------------------------------------------------

_TEXT_ALPHABET = sorted({decode_text(bytes((b,))) for b in range(1, 256)})


def _wire_strategy(wire: Construct) -> st.SearchStrategy[Any]:
    if isinstance(wire, Bcd):
        return st.integers(0, bcd_max(wire.size))
    if isinstance(wire, FormatField):
        return st.integers(0, (1 << (8 * wire.length)) - 1)
    if isinstance(wire, Bool):
        return st.booleans()
    if isinstance(wire, FixedText):
        return st.text(alphabet=_TEXT_ALPHABET, max_size=wire.size)
    if isinstance(wire, TailText):
        return st.text(alphabet=_TEXT_ALPHABET, max_size=40)
    if isinstance(wire, TailBytes):
        return st.binary(max_size=40)
    if isinstance(wire, Bytes):
        return st.binary(min_size=wire.size, max_size=wire.size)
    if isinstance(wire, Stamp):
        if wire.is_datetime:
            stamps: st.SearchStrategy[Any] = st.datetimes(
                dt.datetime(2000, 1, 1), dt.datetime(2099, 12, 31, 23, 59, 59)
            ).map(lambda d: d.replace(microsecond=0, second=d.second if "S" in wire.parts else 0))
        else:
            stamps = st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31))
        return st.none() | stamps if wire.nullable else stamps
    raise AssertionError(f"no strategy for {wire!r}")


def _strategy(cls: type, **extra: Any) -> st.SearchStrategy[Any]:
    fields = {name: _wire_strategy(wire) for name, wire, _ in wire_fields(cls)}
    return st.builds(cls, **extra, **fields)


def request_strategy(cls: type[Request[Any]]) -> st.SearchStrategy[Request[Any]]:
    return _strategy(cls, password=st.integers(0, 9999))


def answer_strategy(cls: type[Answer]) -> st.SearchStrategy[Answer]:
    return _strategy(cls)


def example(cls: type[Request[Any]]) -> Request[Any]:
    """A valid request of ``cls`` with every fixed field filled."""
    values = {name: _example_value(wire) for name, wire, _ in wire_fields(cls)}
    return cls(1, **values)


def example_answer(cls: type[Answer]) -> Answer:
    return cls(**{name: _example_value(wire) for name, wire, _ in wire_fields(cls)})


def _example_value(wire: Construct) -> Any:
    if isinstance(wire, Bcd | FormatField):
        return 1
    if isinstance(wire, Bool):
        return True
    if isinstance(wire, FixedText | TailText):
        return "ab"
    if isinstance(wire, TailBytes):
        return b"\x01\x02"
    if isinstance(wire, Bytes):
        return bytes(wire.size)
    assert isinstance(wire, Stamp)
    return dt.datetime(2024, 3, 15, 12, 30) if wire.is_datetime else dt.date(2024, 3, 15)


@pytest.mark.parametrize("cls", ALL_REQUESTS, ids=REQUEST_IDS)
@given(data=st.data())
def test_request_round_trip(cls: type[Request[Any]], data: st.DataObject) -> None:
    request_ = data.draw(request_strategy(cls))
    # 91h of a register with its own class (12h; 33h and 34h with zero parameters) decodes as
    # that class by design.
    if isinstance(request_, ReadRegister) and request_.register in TYPED_REGISTERS:
        typed = TYPED_REGISTERS[request_.register]
        assume(not request_.encode()[3:].startswith(typed.PREFIX))
    assert decode_request(request_.encode()) == request_


@pytest.mark.parametrize("cls", ALL_REQUESTS, ids=REQUEST_IDS)
@given(data=st.data())
def test_answer_round_trip(cls: type[Request[Any]], data: st.DataObject) -> None:
    request_ = data.draw(request_strategy(cls))
    answer_ = data.draw(answer_strategy(cls.ANSWER))
    assert request_.decode_answer(encode_answer(cls.CODE, answer_)) == answer_


def test_every_answer_class_is_covered() -> None:
    answers = {cls.ANSWER for cls in ALL_REQUESTS}
    assert answers == {
        Done,
        Status,
        StateCode,
        DeviceType,
        PaymentAnswer,
        RegisterValue,
        LastDocument,
        FnShift,
        FnOfdStatus,
        FnSerial,
        FnValidity,
        FnStatus,
        FnVersion,
        FnDocumentSize,
        FnDocumentData,
        CashInDrawer,
        ShiftState,
    }
    for cls in answers:
        assert dataclasses.is_dataclass(cls)


# -- through the lower layers ---------------------------------------------------------------------


def test_sheet_packets_carry_these_blocks() -> None:
    from kkt.protocols.atol.buffer import (
        Add,
        AsyncResult,
        decode_buffer_command,
        decode_buffer_reply,
    )
    from kkt.protocols.atol.packet import decode_packet

    # Zzzzipper AtolProtocol.h device dump: Add flags=01 TID=02 with the A5h block.
    add = decode_buffer_command(decode_packet(h("FE 06 00 07 C1 01 02 00 00 A5 8D")).data)
    assert isinstance(add, Add)
    assert decode_request(add.data) == GetDeviceType(0)
    # kurbatov/atol4j TransportProtocolV3Test: async result of TID 0x57 with reply 55 00 00.
    result = decode_buffer_reply(decode_packet(h("FE 05 00 F0 A6 57 55 00 00 FD EE")).data)
    assert isinstance(result, AsyncResult)
    assert ZReport(0).decode_answer(result.data) == Done()


def test_cash_in_drawer_layout() -> None:
    # kurbatov/atol4j command/common/request/CashRequest.java: the command is the one byte 4Dh
    # (encoder: 00 00 4D with the default password); its answer starts with 4Dh and the rest is
    # the BCD sum (decode(buf[1..])), an error reply starts with 55 instead.  The sum's 7 bytes
    # are this codec's (unverified) choice.
    assert GetCashInDrawer(0).encode() == h("00 00 4D")
    assert decode_request(h("00 00 4D")) == GetCashInDrawer(0)
    reply = h("4D 00 00 00 00 01 50 05")
    assert GetCashInDrawer(0).decode_answer(reply) == CashInDrawer(15005)
    assert encode_answer(0x4D, CashInDrawer(15005)) == reply
    with pytest.raises(AtolDeviceError) as refused:
        GetCashInDrawer(0).decode_answer(h("55 66 00"))
    assert refused.value.code == 0x66
    with pytest.raises(CodecError):
        GetCashInDrawer(0).decode_answer(h("55 00 00 00 00 00 00 01 50"))  # another command's


def test_the_readme_states_how_many_typed_commands_there_are() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    codes = [cls.CODE for cls in ALL_REQUESTS]
    figure = f"{len(ALL_REQUESTS)} typed commands from {min(codes):02X}h to {max(codes):02X}h"
    assert figure in readme.replace("\n  ", " ")
