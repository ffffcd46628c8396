"""The README's quick starts, run verbatim (issue 14: "the README's quick starts run verbatim in a
test").

The fenced blocks are read from README.md at test time -- nothing here repeats a command -- and
every command runs as a user would type it: through ``bash`` in a private directory holding a copy
of ``examples/``, with a private ``HOME``.  The only changes are the plain-text replacements of
`SUBSTITUTIONS`, each for a fixed path or a port the README names; nothing else is changed.

The parser (`parse_sh`) knows these line forms and no others:

* ``COMMAND`` -- run it; its exit code must be 0, or N when the line's comment says ``exit N``;
* ``COMMAND &`` and any ``kkt emulator serve`` line -- a server: started in the background (the
  README starts the `kkt` command's one "in one terminal"), ready once it printed its control
  socket, stopped with SIGTERM at the end of the test, when it must exit 0;
* ``#   TEXT`` (a hash and three spaces) -- a line the command above prints (checked, in order;
  ``...`` stands for anything, ``/dev/pts/N`` for any pty);
* ``# TEXT`` -- a comment, skipped;
* ``$ COMMAND`` -- a command in prompt form; the lines after it, up to the next ``$``, are what
  it prints (checked as above).

Python blocks run as scripts.  The ATOL block is a fragment ("as above": it sells the receipt the
driver's block builds), so it runs appended to the driver's block, as a user would paste it.
Every fenced block of the four sections runs (`test_every_block_is_run` keeps it so); a command
that needs hardware (``/dev/ttyACM0``) runs against the emulator's pty instead.
"""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
COMMAND_TIMEOUT = 120.0  # seconds for one command (the suite runs on a loaded 2-core machine)
SERVER_READY = 30.0

EMULATED = "Quick start: an emulated register for your tests"
ATOL = "ATOL registers"
KKT_COMMAND = "Quick start: the `kkt` command"
DRIVER = "Quick start: the driver"

# README text -> what runs instead, and why.  Applied in this order, as plain text, to every
# command and every expected output line.  {tmp}: the test's private directory; {shtrih_port},
# {atol_port}: free TCP ports found at run time (the README's 7778 and 5555 may be taken by
# another program on this machine).
SUBSTITUTIONS: tuple[tuple[str, str, str], ...] = (
    (
        "kkt emulator serve --state /tmp/kkt1          #",
        "kkt emulator serve --state /tmp/kkt1 --tcp 127.0.0.1:7778 #",
        "the `kkt` quick start's server listens on its default address, 127.0.0.1:7778 (its "
        "comment says so); made explicit so that the port below can be replaced",
    ),
    ("/tmp/kkt1", "{tmp}/kkt1", "a private state directory (and its -tty link)"),
    ("/tmp/atol1", "{tmp}/atol1", "a private state directory (and its -tty link)"),
    ("127.0.0.1:7778", "127.0.0.1:{shtrih_port}", "a free port for the Shtrih emulator"),
    ("127.0.0.1:5555", "127.0.0.1:{atol_port}", "a free port for the ATOL emulator"),
    ("10.0.0.5:5555", "127.0.0.1:{atol_port}", "the README's LAN register: the ATOL emulator"),
    ("/dev/ttyACM0", "{tmp}/atol1-tty", "a register on USB: the ATOL emulator's pty"),
)
# The default --url of commands without one: $KKT_URL (README: "default $KKT_URL, else
# socket://127.0.0.1:7778") pointed at the substituted port of the section's emulator.
KKT_URL = {
    EMULATED: "socket://127.0.0.1:{shtrih_port}",
    KKT_COMMAND: "socket://127.0.0.1:{shtrih_port}",
    ATOL: "socket://127.0.0.1:{atol_port}",
    DRIVER: "socket://127.0.0.1:{atol_port}",  # its only default-URL command: ATOL's shift open
}


# -- reading the README ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    section: str
    language: str
    text: str
    line: int  # of the opening fence, 1-based


def blocks(section: str) -> list[Block]:
    """The fenced blocks under the ``## section`` heading (up to the next ``## ``)."""
    found: list[Block] = []
    current = ""
    fence: tuple[str, int, list[str]] | None = None
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), start=1):
        if fence is not None:
            if line.startswith("```"):
                language, start, lines = fence
                if current == section:
                    found.append(Block(section, language, "\n".join(lines) + "\n", start))
                fence = None
            else:
                fence[2].append(line)
        elif line.startswith("```"):
            fence = (line[3:].strip(), number, [])
        elif line.startswith("## "):
            current = line[3:].strip()
    assert found, f"README.md has no fenced block under '## {section}'"
    return found


@dataclass
class Step:
    command: str
    line: int
    exit_code: int = 0
    background: bool = False
    expected: list[str] = field(default_factory=list)  # lines it prints, in order


_EXIT = re.compile(r"#.*\bexit (?:code )?(\d+)\b")


def parse_sh(block: Block) -> list[Step]:
    steps: list[Step] = []
    prompt = False  # inside a "$ command" and its output
    for offset, line in enumerate(block.text.splitlines(), start=1):
        number = block.line + offset
        if not line.strip():
            continue
        if line.startswith("$ "):
            steps.append(_step(line[2:], number))
            prompt = True
        elif prompt:
            steps[-1].expected.append(line)
        elif line.startswith("#   "):
            assert steps, f"README.md:{number}: an output line before any command"
            steps[-1].expected.append(line[4:])
        elif line.startswith("#"):
            continue
        else:
            steps.append(_step(line, number))
    return steps


def _step(command: str, number: int) -> Step:
    words = shlex.split(command, comments=True)
    exit_code = _EXIT.search(command)
    background = words[-1] == "&" or words[:3] == ["kkt", "emulator", "serve"]
    return Step(command, number, int(exit_code.group(1)) if exit_code else 0, background=background)


def test_the_parser_knows_each_line_form() -> None:
    block = Block(
        "s",
        "sh",
        "kkt emulator serve --state /tmp/x &\n#   listening tcp 1\n# a comment\n"
        "kkt status   # refused: exit 1\n$ kkt decode 02\nrequest ...\n",
        10,
    )
    serve, status, decode = parse_sh(block)
    assert (serve.background, serve.expected, serve.line) == (True, ["listening tcp 1"], 11)
    assert (status.background, status.exit_code, status.expected) == (False, 1, [])
    assert (decode.command, decode.expected) == ("kkt decode 02", ["request ..."])
    assert _matches(["a", "request X(y=1, z=2)", "b"], ["request X(y=1, ...)", "b"]) is None
    assert _matches(["b", "a"], ["a", "b"]) == "b"


def test_every_block_is_run() -> None:
    """sh blocks run whole in their section's test; the only python blocks are the two that
    `test_the_driver` runs -- a new one must be added there, not left unrun."""
    for section in (EMULATED, ATOL, KKT_COMMAND, DRIVER):
        for block in blocks(section):
            assert block.language in ("sh", "python"), f"README.md:{block.line}: {block.language}"
    python = [(b.section, b.language) for s in (EMULATED, ATOL, KKT_COMMAND, DRIVER)
              for b in blocks(s) if b.language == "python"]  # fmt: skip
    assert python == [(ATOL, "python"), (DRIVER, "python")]


# -- running it -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in expected.split("...")]
    text = ".*".join(parts)
    return re.compile(re.sub(r"/dev/pts/\d+", r"/dev/pts/\\d+", text))


def _matches(printed: list[str], expected: list[str]) -> str | None:
    """None when ``expected`` appears in ``printed`` in order, else the first line missing."""
    lines = iter(printed)
    for want in expected:
        pattern = _pattern(want)
        if not any(pattern.fullmatch(line.rstrip()) for line in lines):
            return want
    return None


class Shell:
    """Runs a section's steps in one private directory; stops its servers at the end."""

    def __init__(self, tmp: Path, section: str) -> None:
        self.tmp = tmp
        self.values = {
            "tmp": str(tmp),
            "shtrih_port": str(_free_port()),
            "atol_port": str(_free_port()),
        }
        shutil.copytree(ROOT / "examples", tmp / "examples")
        (tmp / "home").mkdir()
        bin_dir = str(Path(sys.executable).parent)  # this environment's kkt and python
        self.env = {
            **os.environ,
            "HOME": str(tmp / "home"),
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "KKT_URL": KKT_URL[section].format(**self.values),
        }
        self.env.pop("XDG_STATE_HOME", None)
        self.servers: list[tuple[Step, subprocess.Popen[bytes], bytearray]] = []

    def substitute(self, text: str) -> str:
        for readme, replacement, _ in SUBSTITUTIONS:
            text = text.replace(readme, replacement.format(**self.values))
        return text

    def run(self, step: Step) -> str:
        command = self.substitute(step.command)
        where = f"README.md:{step.line}: {step.command}\n  ran: {command}"
        if step.background:
            self._start(step, command, where)
            return ""
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.tmp,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        assert done.returncode == step.exit_code, (
            f"{where}\n  exit {done.returncode}, expected {step.exit_code}\n"
            f"  stdout: {done.stdout}\n  stderr: {done.stderr}"
        )
        missing = _matches(done.stdout.splitlines(), [self.substitute(e) for e in step.expected])
        assert missing is None, f"{where}\n  does not print {missing!r}; printed:\n{done.stdout}"
        return done.stdout

    def python(self, source: str, line: int) -> str:
        script = self.tmp / f"readme_{line}.py"
        script.write_text(self.substitute(source), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=self.tmp,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"README.md:{line}: python block\n{done.stderr}"
        return done.stdout

    def _start(self, step: Step, command: str, where: str) -> None:
        assert "--tcp" in command, f"{where}\n  would listen on a README port: substitute it"
        words = shlex.split(command, comments=True)
        if words[-1] == "&":
            words.pop()
        server = subprocess.Popen(
            words,
            cwd=self.tmp,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,  # read with os.read: select() says nothing of a reader's own buffer
        )
        printed = bytearray()
        self.servers.append((step, server, printed))
        assert server.stdout is not None
        deadline = time.monotonic() + SERVER_READY
        while not re.search(rb"^control unix .*\n", printed, re.MULTILINE):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([server.stdout], [], [], max(0.0, left))
            chunk = os.read(server.stdout.fileno(), 4096) if ready else b""
            if not chunk:
                raise AssertionError(
                    f"{where}\n  the server did not start (exit {server.poll()}):\n"
                    + printed.decode(errors="replace")
                )
            printed += chunk

    def stop(self) -> None:
        """SIGTERM to every server; each must exit 0 having printed what the README shows."""
        problems: list[str] = []
        for step, server, printed in self.servers:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
            try:
                rest, _ = server.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                rest, _ = server.communicate()
                problems.append(f"README.md:{step.line}: the server ignored SIGTERM")
            printed += rest
            lines = printed.decode(errors="replace").splitlines()
            if server.returncode != 0:
                problems.append(f"README.md:{step.line}: the server exited {server.returncode}")
            missing = _matches(lines, [self.substitute(e) for e in step.expected])
            if missing is not None:
                problems.append(f"README.md:{step.line}: the server did not print {missing!r}")
            if problems:
                problems.append("  it printed:\n" + "\n".join(lines))
        self.servers.clear()
        assert not problems, "\n".join(problems)


@pytest.fixture
def shell(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Shell]:
    section: str = request.param
    running = Shell(tmp_path, section)
    try:
        yield running
    finally:
        running.stop()


def _sh_steps(section: str) -> list[Step]:
    steps: list[Step] = []
    for block in blocks(section):
        if block.language == "sh":
            steps += parse_sh(block)
    assert steps
    return steps


# -- the quick starts -----------------------------------------------------------------------------


@pytest.mark.parametrize("shell", [EMULATED], indirect=True)
def test_an_emulated_register_for_your_tests(shell: Shell) -> None:
    steps = _sh_steps(EMULATED)
    assert [step.background for step in steps].count(True) == 1
    printed = [shell.run(step) for step in steps]
    assert printed[-1].splitlines()[-1] == "ok"  # verify: numbering, signs, counters
    shell.stop()


@pytest.mark.parametrize("shell", [KKT_COMMAND], indirect=True)
def test_the_kkt_command(shell: Shell) -> None:
    printed = {
        step.command.split("#")[0].strip(): shell.run(step) for step in _sh_steps(KKT_COMMAND)
    }
    assert "fiscal sign" in printed["kkt sell examples/receipt.json"]
    assert "регистрац" in printed["kkt doc 1"]
    shell.stop()


@pytest.mark.parametrize("shell", [ATOL], indirect=True)
def test_atol_registers(shell: Shell) -> None:
    for step in _sh_steps(ATOL):
        shell.run(step)
    shell.stop()


@pytest.mark.parametrize("shell", [DRIVER], indirect=True)
def test_the_driver(shell: Shell) -> None:
    """The driver's block sells on the `kkt` quick start's emulator; the ATOL block, pasted after
    it, sells the same receipt on the ATOL quick start's emulator once its shift is open (both
    servers started by the README's own serve lines, the shift by its own `shift open` line)."""
    (driver,) = (b for b in blocks(DRIVER) if b.language == "python")
    (atol,) = (b for b in blocks(ATOL) if b.language == "python")
    atol_steps = _sh_steps(ATOL)
    for step in (*(s for s in _sh_steps(KKT_COMMAND) if s.background), atol_steps[0]):
        assert step.background
        shell.run(step)
    shell.run(next(s for s in atol_steps if "shift open" in s.command))
    atol_fn = Step("kkt --protocol atol --url socket://127.0.0.1:5555 fn --json", 0)

    def atol_documents() -> int:
        last: int = json.loads(shell.run(atol_fn))["lastDocument"]
        return last

    sold = shell.python(driver.text, driver.line)
    number, sign, qr = sold.split()
    assert number.isdigit() and sign.isdigit() and qr.startswith("t=")
    before = atol_documents()
    # Pasted together: the driver's key again returns its first receipt, printed the same.
    assert shell.python(driver.text + atol.text, atol.line) == sold
    assert atol_documents() == before + 1  # the ATOL block's sale
    shell.stop()
