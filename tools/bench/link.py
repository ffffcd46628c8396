"""``kkt bench link``: how many short-status round trips a second, and how fast the codec is.

* ``link.tcp.status_per_s`` -- 10h (short status) over TCP loopback to an emulator served from a
  background thread, through the driver's `Register.raw`;
* ``link.pty.status_per_s`` -- the same over a real pseudo-terminal pair;
* ``link.inproc.status_per_s`` -- the same in process (no wire: the driver's and register's cost);
* ``codec.frames_per_s`` -- encode a request, frame it, deframe it and decode it, in memory.

Every round trip here is a full exchange of the link rules: AUTO ENQ mode sends ENQ before a
command whose answer could be mistaken for the previous one's, which a run of identical status
queries always is -- so each counted round trip is ENQ/NAK, frame/ACK, answer/ACK.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from kkt.emulator.faults import Faults
from kkt.emulator.shtrih import open_device
from kkt.protocols.shtrih import classic
from kkt.protocols.shtrih.frame import Deframer, Frame, encode_frame
from kkt.protocols.shtrih.message import decode_request

import kkt

from ..demo import EmulatorThread
from . import Bench, Figure, case, median_rate


def _status_rate(url: str, bench: Bench) -> float:
    count = bench.size(300, 2000)
    with kkt.connect(url) as register:
        request = classic.GetShortStatus(register.password)
        register.raw(request)  # the first command syncs the link
        return median_rate(lambda: register.raw(request), count, bench.rounds())


@case("link")
def link_case(bench: Bench) -> Iterator[Figure]:
    device = open_device(bench.work / "link-state")
    try:
        with EmulatorThread(device, Faults(), pty=bench.work / "link-tty") as served:
            tcp = _status_rate(f"socket://127.0.0.1:{served.port}", bench)
            yield Figure("link.tcp.status_per_s", tcp, "1/s", "target >= 2000")
            pty = _status_rate(str(Path(bench.work / "link-tty")), bench)
            yield Figure("link.pty.status_per_s", pty, "1/s")
    finally:
        device.close()
    inproc = _status_rate(f"emulator:{bench.work / 'link-inproc'}", bench)
    yield Figure("link.inproc.status_per_s", inproc, "1/s")
    yield Figure("codec.frames_per_s", _codec_rate(bench), "1/s", "encode+frame+deframe+decode")


def _codec_rate(bench: Bench) -> float:
    request = classic.GetShortStatus(30)
    deframer = Deframer()

    def round_trip() -> None:
        for token in deframer.feed(encode_frame(request.encode())):
            assert isinstance(token, Frame)
            decode_request(token.payload)

    return median_rate(round_trip, bench.size(20_000, 100_000), bench.rounds())
