"""The rule for every file a command writes, checked before any work: its folder exists; it is none of the inputs,
even with ``force`` (writing would destroy what is read); an existing file is replaced only with ``force``. Each
refusal is one line naming the path and the fix (exit 1, docs/cli.md)."""

from __future__ import annotations

import os
from pathlib import Path

from hipcheck.errors import InvalidValueError

__all__ = ["check_output_file", "check_folder_of", "same_file"]


def same_file(a, b) -> bool:
    """a and b name one file (the same path, or two paths of one existing file)."""
    a, b = Path(a), Path(b)
    return os.path.abspath(a) == os.path.abspath(b) or (a.exists() and b.exists() and os.path.samefile(a, b))


def check_folder_of(output) -> None:
    """The folder ``output`` would be written in exists."""
    folder = Path(output).absolute().parent
    if not folder.is_dir():
        raise InvalidValueError(f"the folder {folder} does not exist: create it or give another path")


def check_output_file(output, *, force: bool, inputs=()) -> Path:
    """``output`` checked as the module docstring says; inputs may hold None (an input not given)."""
    output = Path(output)
    check_folder_of(output)
    for source in inputs:
        if source is not None and same_file(source, output):
            raise InvalidValueError(f"{output} is also the input: writing it would destroy what is read; "
                                    "give another output file")
    if output.is_dir():
        raise InvalidValueError(f"{output} is a folder; give a file name")
    if output.exists() and not force:
        raise InvalidValueError(f"{output} exists; pass --force to overwrite it, or give another file name")
    return output
