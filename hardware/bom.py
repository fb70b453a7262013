"""The bill of materials: `hardware/bom.csv` checked, totalled per build, and rendered into `hardware/README.md`.

bom.csv has one row per part: which builds use it (`a`, `b` or `ab`), the reference used in the netlist and the
wiring tables, the part, quantity, manufacturer and manufacturer part number, the value a simulation uses (for
parts in `motor_driver.cir`), a typical unit price with its currency and date, and alternatives. The README's
BOM block is this script's output; `tests/test_hardware.py` fails when it is stale or when a value disagrees
with the netlist.

    python hardware/bom.py            # check the README block; print the totals
    python hardware/bom.py --write    # regenerate the README block
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generated  # noqa: E402  (hardware/ is a folder of scripts, not a package)

BOM_CSV = HERE / "bom.csv"
README = HERE / "README.md"
COLUMNS = ("builds", "ref", "part", "qty", "manufacturer", "mpn", "value", "unit_price", "currency", "price_as_of",
           "alternatives")
BUILDS = {"a": "XIAO ESP32S3 + LSM6DSOX breakout", "b": "Nano RP2040 Connect"}


class BomError(ValueError):
    """A row of bom.csv is malformed; the message names the row."""


@dataclass(frozen=True)
class Row:
    builds: str
    ref: str
    part: str
    qty: int
    manufacturer: str
    mpn: str
    value: str
    unit_price: float
    currency: str
    price_as_of: str
    alternatives: str

    @property
    def line_price(self) -> float:
        return self.qty * self.unit_price


def load(path: Path = BOM_CSV) -> list[Row]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise BomError(f"{path.name}: columns are {reader.fieldnames}, expected {list(COLUMNS)}")
        rows = [_row(n, record) for n, record in enumerate(reader, start=2)]
    currencies = {r.currency for r in rows}
    if len(currencies) != 1:
        raise BomError(f"{path.name}: prices in several currencies {sorted(currencies)}: totals need one")
    for key in BUILDS:
        refs = [r.ref for r in rows if key in r.builds]
        doubled = sorted({ref for ref in refs if refs.count(ref) > 1})
        if doubled:
            raise BomError(f"{path.name}: build ({key}) has {', '.join(doubled)} more than once")
    return rows


def _row(line: int, record: dict) -> Row:
    where = f"bom.csv line {line} ({record.get('ref')})"
    if not record["builds"] or set(record["builds"]) - set(BUILDS):
        raise BomError(f"{where}: builds {record['builds']!r}: use a, b or ab")
    try:
        qty, price = int(record["qty"]), float(record["unit_price"])
    except ValueError as error:
        raise BomError(f"{where}: qty must be a whole number and unit_price a number ({error})") from None
    if qty < 1 or price < 0:
        raise BomError(f"{where}: qty {qty} and unit_price {price} must be positive")
    for column in ("part", "manufacturer", "mpn", "currency", "price_as_of"):
        if not record[column].strip():
            raise BomError(f"{where}: {column} is empty")
    return Row(record["builds"], record["ref"], record["part"], qty, record["manufacturer"], record["mpn"],
               record["value"], price, record["currency"], record["price_as_of"], record["alternatives"])


def totals(rows: list[Row]) -> dict[str, float]:
    return {key: round(sum(r.line_price for r in rows if key in r.builds), 2) for key in BUILDS}


def render_block(rows: list[Row]) -> str:
    """The README's BOM block: a table per build and the totals."""
    currency = rows[0].currency
    dates = sorted({r.price_as_of for r in rows})
    total = totals(rows)
    out = []
    for key, title in BUILDS.items():
        out += [f"**Build ({key}): {title}**", "",
                f"| ref | part | qty | manufacturer | part number | unit {currency} | line {currency} |",
                "| --- | --- | ---: | --- | --- | ---: | ---: |"]
        for r in rows:
            if key in r.builds:
                out.append(f"| {r.ref} | {r.part} | {r.qty} | {r.manufacturer} | {r.mpn} | {r.unit_price:.2f} | "
                           f"{r.line_price:.2f} |")
        out += [f"| | **total** | | | | | **{total[key]:.2f}** |", ""]
    out.append(f"Totals computed by `hardware/bom.py` from `hardware/bom.csv` (alternatives are listed there): "
               + ", ".join(f"build ({k}) {currency} {v:.2f}" for k, v in total.items())
               + f". Typical single-unit prices in {currency}, as of {', '.join(dates)}.")
    return "\n".join(out)


def outputs() -> dict[Path, str]:
    return {README: generated.replace_block(README.read_text(), "bom", render_block(load()))}


if __name__ == "__main__":
    status = generated.main(outputs, sys.argv[1:], "hardware/bom.py")
    if sys.argv[1:] != ["--write"]:
        rows = load()
        for key, value in totals(rows).items():
            print(f"build ({key}) {BUILDS[key]}: {rows[0].currency} {value:.2f}")
    sys.exit(status)
