"""``kkt bench link``: how many short-status round trips a second, and how fast the codec is.

* ``link.tcp.status_per_s`` -- 10h (short status) over TCP loopback to ``kkt emulator serve``
  running as its own process, through the driver's `Register.raw`;
* ``link.pty.status_per_s`` -- the same over a real pseudo-terminal pair;
* ``link.inproc.status_per_s`` -- the same in process (no wire: the driver's and register's cost);
* ``codec.frames_per_s`` -- encode a request, frame it, deframe it and decode it, in memory.

Each round trip is frame -> ACK + answer -> ACK (a repeated status query is idempotent, so the
link skips the ENQ guard it keeps for repeated money-moving codes), plus the 0xFF a network
register sends after the host's ACK.
"""

from __future__ import annotations

from collections.abc import Iterator

from kkt.protocols.shtrih import classic
from kkt.protocols.shtrih.frame import Deframer, Frame, encode_frame
from kkt.protocols.shtrih.message import decode_request

import kkt

from . import Bench, Figure, case, median_rate
from .served import served_emulator


def _status_rate(url: str, bench: Bench) -> float:
    count = bench.size(300, 2000)
    with kkt.connect(url) as register:
        request = classic.GetShortStatus(register.password)
        register.raw(request)  # the first command syncs the link
        return median_rate(lambda: register.raw(request), count, bench.rounds())


@case("link")
def link_case(bench: Bench) -> Iterator[Figure]:
    tty = bench.work / "link-tty"
    with served_emulator(bench.work / "link-state", tty) as tcp_url:
        tcp = _status_rate(tcp_url, bench)
        yield Figure("link.tcp.status_per_s", tcp, "1/s", "target >= 2000")
        yield Figure("link.pty.status_per_s", _status_rate(str(tty), bench), "1/s")
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
