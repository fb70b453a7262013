"""Read the motor driver's SPICE netlist (hardware/motor_driver.cir) into parts and nets.

Only what the deck uses is understood: two-terminal parts (R, C, L, D, V, I), MOSFETs (M: drain, gate, source,
bulk) and subcircuit instances (X: nodes, then the subcircuit's name), `.subckt NAME pins...` / `.ends` blocks,
`*` comment lines, `;` comments and `+` continuation lines. Node `0` is ground. Everything else (`.model`,
`.tran`, the `.control` block) is skipped.

    net = read(Path("hardware/motor_driver.cir"))
    net.parts["R1"]            # Part(name='R1', kind='R', nodes=('gpio', 'gate'), value='220')
    net.subckt_pins["AO3400A"]  # ('d', 'g', 's')
    net.nets(wires=("VSENSE",))  # node -> [(part, terminal index)], with the 0 V ammeter taken as a wire
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TWO_TERMINAL = "RCLDVI"


class NetlistError(ValueError):
    """The netlist has a line this reader cannot place; the message names the line."""


@dataclass(frozen=True)
class Part:
    name: str  # reference as in bom.csv (R1, D1, XQ1 ...)
    kind: str  # first letter: R, C, L, D, V, I, M, X
    nodes: tuple[str, ...]
    value: str  # value or model or subcircuit name


@dataclass
class Netlist:
    parts: dict[str, Part] = field(default_factory=dict)  # top level only, in file order
    subckt_pins: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def nets(self, wires=()) -> dict[str, list[tuple[str, int]]]:
        """node -> [(part name, terminal index)]; parts named in `wires` (0 V ammeters) join their two nodes, under
        the name of the first."""
        alias = {}

        def root(node):
            while node in alias:
                node = alias[node]
            return node

        for name in wires:
            a, b = (root(n) for n in self.parts[name].nodes[:2])
            if a != b:
                alias[b] = a
        out: dict[str, list[tuple[str, int]]] = {}
        for part in self.parts.values():
            if part.name in wires:
                continue
            for index, node in enumerate(part.nodes):
                out.setdefault(root(node), []).append((part.name, index))
        return out


def _logical_lines(text: str):
    """(line number, text) with comments removed and `+` continuations joined."""
    lines: list[list] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("*"):
            continue
        if line.lstrip().startswith("+"):
            if not lines:
                raise NetlistError(f"line {number}: a continuation with nothing before it")
            lines[-1][1] += " " + line.lstrip()[1:]
            continue
        lines.append([number, line.strip()])
    return [(n, t) for n, t in lines]


def parse(text: str) -> Netlist:
    net = Netlist()
    in_subckt = None
    in_control = False
    for number, line in _logical_lines(text):
        tokens = line.split()
        word = tokens[0].lower()
        if in_control:
            in_control = word != ".endc"
            continue
        if word == ".control":
            in_control = True
        elif word == ".subckt":
            if len(tokens) < 3:
                raise NetlistError(f"line {number}: .subckt needs a name and its pins")
            in_subckt = tokens[1]
            net.subckt_pins[in_subckt] = tuple(tokens[2:])
        elif word == ".ends":
            in_subckt = None
        elif word.startswith(".") or in_subckt is not None:
            continue
        else:
            part = _part(number, tokens)
            if part.name in net.parts:
                raise NetlistError(f"line {number}: {part.name} is defined twice")
            net.parts[part.name] = part
    if in_subckt is not None:
        raise NetlistError(f".subckt {in_subckt} has no .ends")
    return net


def _part(number: int, tokens: list[str]) -> Part:
    name = tokens[0]
    kind = name[0].upper()
    if kind in TWO_TERMINAL:
        count = 2
    elif kind == "M":
        count = 4
    elif kind == "X":
        params = [i for i, t in enumerate(tokens) if "=" in t or t.lower() == "params:"]
        end = params[0] if params else len(tokens)
        count = end - 2
    else:
        raise NetlistError(f"line {number}: {name}: element kind {kind!r} is not one this reader knows")
    if len(tokens) < count + 2 or count < 1:
        raise NetlistError(f"line {number}: {name} needs {count} nodes and a value or model")
    return Part(name, kind, tuple(tokens[1:1 + count]), " ".join(tokens[1 + count:]))


def read(path: Path) -> Netlist:
    return parse(Path(path).read_text())
