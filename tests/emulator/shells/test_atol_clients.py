"""Open ATOL clients' own command sequences, sent byte for byte to the emulator on TCP.

Each test replays what one public client sends -- on connect and in a shop's day -- over the v3
task buffer as atol4j's ``TransportProtocolV3`` does it (Abort once, then each command an Add
with NeedResult, its result inline or in an F0 packet, then Ack), against the `Service` that
``kkt emulator serve --protocol atol`` runs, and checks every command is answered as the client
expects: no refusal where the client would stop.

Clients (fact sheet §5.1):

* Zzzzipper/projects firmware-usbhost/common/fiscal_register/atol/AtolCommandLayer.cpp -- ``reset``
  (A4h 31h, 3Fh) and the sale path (3Fh, 56h, 9Ah, 92h, EAh, EBh, 4Ah, 91h 33h);
* RPiVendApp ``CashDesk.cs`` (the UWP C# vending app; source repository unknown) --
  ``GetKKTInformation``: 91h 12h 00 01, 3Fh, 45h, A4h 10h;
* lazersib/multimag common/cri/atol/atol.php with web/include/modules/docservice/cashregister.php
  -- ``actionInfo`` (3Fh, A5h), ``actionBeep`` (47h three times, no result asked) and
  ``actionPrintFN`` (45h, 56h 6 30, ABh);
* kurbatov/atol4j CashRegister.java ``connect`` (3Fh, A5h), CashRegisterIT ``connectTest`` (56h 1
  with password 29, 48h) and RequestBuilder ``cash`` (4Dh);
* Unact/kkm lib/kkm/device_interface.rb at f2ed5a8 (raw protocol-3.1 blocks through the driver)
  -- ``kkm_status`` (3Fh), ``current_mode`` (45h), ``fn_status`` (A4h 30h), ``fn_version`` (A4h
  33h), ``ofd_status`` (A4h 20h) and ``cheque_data`` (A4h 45h, then 46h until an error).
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kkt.emulator.atol import AtolRegister
from kkt.emulator.shells import Service
from kkt.protocols.atol import commands as c
from kkt.protocols.atol.buffer import (
    Abort,
    Ack,
    Add,
    AsyncError,
    AsyncResult,
    Error,
    InProgress,
    Pending,
    Result,
    TaskFlags,
    Waiting,
    decode_buffer_reply,
)
from kkt.protocols.atol.packet import Packet, PacketDeframer, encode_packet

pytestmark = pytest.mark.timeout(60)

NEED_RESULT = TaskFlags(0x01)  # atol4j NEED_RESULT, Zzzzipper's device dump (flags=01)


class Client:
    """A blocking v3 host as the open clients write it: packet IDs and TIDs counted from 1."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.deframer = PacketDeframer()
        self.packets: list[Packet] = []
        self.packet_id = 0
        self.tid = 0

    def close(self) -> None:
        self.sock.close()

    def _send(self, data: bytes) -> int:
        self.packet_id = self.packet_id % 0xDF + 1
        self.sock.sendall(encode_packet(self.packet_id, data))
        return self.packet_id

    def _next(self, wanted: Callable[[Packet], bool]) -> Packet:
        while True:
            for index, packet in enumerate(self.packets):
                if wanted(packet):
                    return self.packets.pop(index)
            chunk = self.sock.recv(4096)
            assert chunk, "the emulator closed the connection"
            self.packets += [p for p in self.deframer.feed(chunk) if isinstance(p, Packet)]

    def abort(self) -> bytes:
        sent = self._send(Abort().encode())
        return self._next(lambda p: p.id == sent).data

    def add(self, block: bytes, flags: TaskFlags = NEED_RESULT) -> Any:
        """Add ``block`` as the next task; its buffer reply (Result, Error, or the immediate
        status when no result is asked)."""
        self.tid = self.tid % 0xDF + 1
        tid = self.tid
        sent = self._send(Add(tid, flags, block).encode())
        reply = decode_buffer_reply(self._next(lambda p: p.id == sent).data)
        if not flags & NEED_RESULT or not isinstance(reply, Pending | InProgress | Waiting):
            return reply
        while not isinstance(reply, AsyncResult | AsyncError) or reply.tid != tid:
            reply = decode_buffer_reply(self._next(lambda p: p.id == 0xF0).data)
        return reply

    def ack(self) -> None:
        acked = self._send(Ack(self.tid).encode())
        self._next(lambda p: p.id == acked)

    def run_block(self, block: bytes) -> bytes:
        """``block`` as a task, acknowledged: its result or error reply."""
        reply = self.add(block)
        assert isinstance(reply, Result | Error | AsyncResult | AsyncError), reply
        self.ack()
        return bytes(reply.data)

    def run(self, request: c.Request[Any]) -> Any:
        """``request`` as a task, acknowledged; its typed answer (the device's error raised)."""
        return request.decode_answer(self.run_block(request.encode()))


def serve(tmp_path: Path, client: Callable[[Client], Any]) -> tuple[AtolRegister, Any]:
    """Run ``client`` against a fresh emulated register served on TCP; the device and what the
    client returned (the device stays open for the caller to inspect, then is closed)."""
    device = AtolRegister.open(tmp_path / "state")

    async def main() -> Any:
        async with Service(device, protocol="atol") as service:
            tcp = await service.tcp()

            def connect_and_run() -> Any:
                host = Client(tcp.port)
                try:
                    return client(host)
                finally:
                    host.close()

            return await asyncio.to_thread(connect_and_run)

    try:
        return device, asyncio.run(main())
    except BaseException:
        device.close()
        raise


def test_zzzzipper_reset_and_sale_read_the_last_sale_register(tmp_path: Path) -> None:
    def zzzzipper(host: Client) -> tuple[Any, ...]:
        host.abort()  # AtolTaskLayer: Abort on connect
        serial = host.run(c.GetFnSerial(0))  # gotoStateDeviceStatus: A4 31
        host.run(c.GetStatus(0))  # gotoStateStatus; mode 0 -> gotoStateSaleOpen
        host.run(c.EnterMode(0, 1, 1))  # ModeOpenRequest: mode 1, password2.set(1)
        assert not host.run(c.GetStatus(0)).flags & 0x02  # shift closed -> gotoStateShiftOpen
        host.run(c.OpenShift(0, 0))  # ShiftOpenRequest: flags 0, no text
        assert host.run(c.GetStatus(0)).flags & 0x02  # shift open -> gotoStateCheckOpen
        host.run(c.OpenReceipt(0, 0, 1))  # CheckOpenRequest: flags 0, CheckType_Sale
        host.run(c.BeginItem(0, 0, 1))  # FN105CheckAddStartRequest: flags 0, param 1
        # FN105CheckAddEndRequest: quantity 1000, value = price, section 0, subject 1, method 4
        host.run(c.EndItem(0, 0, 4500, 1000, 4500, 1, 0, 0, 1, 4, 0, 0, "Кофе"))
        host.run(c.CloseReceipt(0, 0, 1, 5000))  # CheckCloseRequest: cash, 50.00 tendered
        last_sale = host.run(c.ReadLastReceipt(0))  # gotoStateLastSale: 91 33 00 00
        last_document = host.run(c.ReadLastDocument(0))
        return serial, last_sale, last_document

    device, (serial, last_sale, last_document) = serve(tmp_path, zzzzipper)
    try:
        assert serial.serial == device.fn.serial
        # The receipt is the last document: the same number, total, time and sign; 33h's type
        # byte is the receipt's (1, a sale), 34h's the FFD document type (3, a receipt).
        assert last_sale == dataclasses.replace(last_document, document_type=1)
        assert (last_document.document_type, last_sale.total) == (3, 4500)
        record = device.fn.record(last_sale.number)
        assert (last_sale.fiscal_sign, last_sale.when) == (record.fiscal_sign, record.when)
    finally:
        device.close()


def test_rpivendapp_information_reads_the_shift_state_register(tmp_path: Path) -> None:
    def rpivendapp(host: Client) -> tuple[Any, ...]:
        host.abort()  # StartCommunication: Abort first
        # GetKKTInformation: 91 12 00 01, 3F, 45, A4 10 -- then the shift opened, and again.
        before = host.run(c.ReadShiftState(0, 0, 1))
        host.run(c.GetStatus(0))
        host.run(c.GetStateCode(0))
        host.run(c.GetFnShift(0))
        host.run(c.EnterMode(0, 1, 30))  # ChangeMode(Registration): 56 01 00 00 00 30
        host.run(c.OpenShift(0, 0, ""))
        opened = host.run(c.ReadShiftState(0, 0, 1))
        shift = host.run(c.GetFnShift(0))
        host.run(c.ExitMode(0))
        host.run(c.EnterMode(0, 3, 30))
        host.run(c.ZReport(0))  # CloseStage
        closed = host.run(c.ReadShiftState(0, 0, 1))
        return before, opened, shift, closed

    device, (before, opened, shift, closed) = serve(tmp_path, rpivendapp)
    try:
        assert before == c.ShiftState(c.SHIFT_CLOSED, None)  # no shift yet
        assert opened.state == c.SHIFT_OPEN and shift.open
        closing = device.fn.record(device.fn.state.last_number)
        opening = device.fn.record(closing.number - 1)  # the Z report followed the opening
        assert opened.when == opening.when  # open: when it opened
        assert closed == c.ShiftState(c.SHIFT_CLOSED, closing.when)  # closed: when it closed
    finally:
        device.close()


def test_multimag_info_beep_and_print_from_the_fn(tmp_path: Path) -> None:
    def multimag(host: Client) -> tuple[Any, ...]:
        host.abort()  # atol::connect: Abort after connecting
        status = host.run(c.GetStatus(0))  # actionInfo: requestGetState, requestDeviceType
        device_type = host.run(c.GetDeviceType(0))
        # actionBeep: cmdBeep three times with result_flags still F_NOFLAGS: nothing is read
        # back but the buffer's immediate status.
        beeps = [host.add(c.Beep(0).encode(), TaskFlags(0)) for _ in range(3)]
        # actionPrintFN(1): requestGetStateCode, mode 0 -> requestEnterToMode(6, 30),
        # requestRePrintDocument(1): the registration report.
        host.run(c.GetStateCode(0))
        host.run(c.EnterMode(0, 6, 30))
        host.run(c.PrintFnDocument(0, 1))
        missing = host.run_block(c.PrintFnDocument(0, 999).encode())
        return status, device_type, beeps, missing

    device, (status, device_type, beeps, missing) = serve(tmp_path, multimag)
    try:
        assert status.serial and device_type.name
        assert not any(isinstance(beep, Error | AsyncError) for beep in beeps)
        assert "ФД: 1" in device.tape()
        # A document the FN does not have: DAh, "no requested data in the FN".
        assert c.decode_error(0xAB, missing).code == 0xDA
    finally:
        device.close()


def test_atol4j_connect_mode_and_cash(tmp_path: Path) -> None:
    def atol4j(host: Client) -> tuple[Any, ...]:
        host.abort()  # CashRegister.toInitialState: abort, then deviceState
        status = host.run(c.GetStatus(0))
        device_type = host.run(c.GetDeviceType(0))  # connect: request().deviceType()
        host.run(c.EnterMode(0, 1, 29))  # connectTest: setMode(REGISTRATION, {0x29})
        host.run(c.OpenShift(0))  # registrationTest: openShift() -- 9A 00
        host.run(c.CashIn(0, 0, 12_345))
        cash = host.run(c.GetCashInDrawer(0))  # RequestBuilder.cash(): 4D
        host.run(c.ExitMode(0))  # resetMode
        return status, device_type, cash

    device, (status, device_type, cash) = serve(tmp_path, atol4j)
    try:
        assert status.mode & 0x0F == 0 and device_type.model == status.model
        assert cash == c.CashInDrawer(device.model.cash_in_drawer()) == c.CashInDrawer(12_345)
    finally:
        device.close()


def test_a_command_the_emulator_does_not_implement_is_refused_not_ignored(
    tmp_path: Path,
) -> None:
    def unknown(host: Client) -> list[bytes]:
        host.abort()
        # atol4j FirmwareVersionRequest (9Dh 01) and LastShiftResultRequest (58h), and an A4h
        # sub-command no codec knows: each refused 66h ("not allowed in this mode"), the code
        # Zzzzipper names CommandError_WrongMode -- a refusal, never silence.
        blocks = (b"\x00\x00\x9d\x01", b"\x00\x00\x58", b"\x00\x00\xa4\x7f")
        return [host.run_block(block) for block in blocks]

    device, replies = serve(tmp_path, unknown)
    try:
        assert replies == [bytes((0x55, 0x66, 0x00))] * 3
    finally:
        device.close()


def test_unact_kkm_status_and_a_document_read_tag_by_tag(tmp_path: Path) -> None:
    def unact(host: Client) -> tuple[Any, ...]:
        host.abort()
        host.run_block(b"\x00\x00\x3f")  # kkm_status: '3F'
        host.run_block(b"\x00\x00\x45")  # current_mode: '45'
        fn_status = host.run_block(b"\x00\x00\xa4\x30")  # FN_STATUS 'A4 30'
        fn_version = host.run_block(b"\x00\x00\xa4\x33")  # FN_VERSION 'A4 33'
        host.run_block(b"\x00\x00\xa4\x20")  # OFD_STATUS 'A4 20'
        # cheque_data(1): "A4 45" and the number's bytes reversed, then A4 46 until an error;
        # each answer after 55 err is one TLV: tag and length reversed (little-endian).
        host.run_block(b"\x00\x00\xa4\x45\x01\x00\x00\x00")
        tags: list[tuple[int, bytes]] = []
        while True:
            answer = host.run_block(b"\x00\x00\xa4\x46")
            if answer[1] != 0:
                return fn_status, fn_version, tags, answer
            tlv = answer[2:]
            length = int.from_bytes(tlv[2:4], "little")
            assert len(tlv) == 4 + length  # the whole answer is this one tag
            tags.append((int.from_bytes(tlv[0:2], "little"), tlv[4:]))

    device, (fn_status, fn_version, tags, end) = serve(tmp_path, unact)
    try:
        # fn_status: the FN serial at res[12..27]; fn_version: res[2..17], then the debug byte.
        assert fn_status[12:28].decode() == device.fn.serial
        assert fn_version[2:18].rstrip(b"\x00").decode() == device.fn.state.config.version[:16]
        body = device.fn.record(1).tlv[4:]  # the registration report's first-level tags
        assert (
            b"".join(
                tag.to_bytes(2, "little") + len(value).to_bytes(2, "little") + value
                for tag, value in tags
            )
            == body
        )
        assert end[:2] == bytes((0x55, 0xDA))  # then "no requested data in the FN"
    finally:
        device.close()
