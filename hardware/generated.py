"""What the hardware scripts share: generated blocks inside hand-written files, and `--write` / `--check`.

A generated block sits between `<!-- NAME:begin -->` and `<!-- NAME:end -->` lines; everything else in the file
is hand-written and kept as it is.
"""

from __future__ import annotations

import re
from pathlib import Path


def replace_block(text: str, name: str, content: str) -> str:
    """`text` with the block NAME's content replaced; ValueError when the markers are missing or doubled."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"expected one {begin} ... {end} block")
    return pattern.sub(lambda _: f"{begin}\n{content}\n{end}", text)


def block(text: str, name: str) -> str:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    return text.split(begin + "\n", 1)[1].split("\n" + end, 1)[0]


def main(outputs, argv: list[str], script: str) -> int:
    """`--write` writes every stale output; `--check` (the default) lists them and returns 1."""
    if argv not in ([], ["--check"], ["--write"]):
        print(f"usage: python {script} [--check | --write]")
        return 2
    stale = [path for path, text in outputs().items() if not path.exists() or path.read_text() != text]
    if argv == ["--write"]:
        for path, text in outputs().items():
            if path in stale:
                path.write_text(text)
                print(f"wrote {path}")
        return 0
    for path in stale:
        print(f"{path} is stale: run python {script} --write")
    return 1 if stale else 0
