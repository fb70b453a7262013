# MicroPython: runs firmware/sim/simboard.py with the stdio link at a given ATT MTU, so that the firmware packs its
# DATA as it would on a BLE connection with that MTU (MTU 23: the compact form).
#   micropython mp_simboard_mtu.py MTU TRACE [simboard options]     (MICROPYPATH as for simboard.py)
# The firmware reads link.mtu before every packet; link_stdio.Link takes the MTU as its argument, which simboard.py
# leaves at the serial default (247).
import sys

if ".frozen" not in sys.path:
    sys.path.append(".frozen")  # the unix port's frozen asyncio, hidden by MICROPYPATH

import link_stdio

_mtu = int(sys.argv.pop(1))
_Base = link_stdio.Link


class _Link(_Base):
    def __init__(self, mtu=_mtu):
        super().__init__(mtu)


link_stdio.Link = _Link

import simboard  # noqa: E402,F401  (runs the board, then exits)
