"""Which hole to ask the device for next, and what its BACKFILL answers mean.

The device serves one BACKFILL answer at a time (a new request replaces the answer under way), so holes are asked
for one at a time, lowest first, in chunks the link carries well. While an answer is under way the next request
waits, unless the answer stalls (no backfilled packet for ``timeout_s``): then the hole is asked again, up to
``tries`` times, and after that marked lost. Where the device's clock runs faster than the wall's (the sim board as
fast as possible), wall time alone says little: a host slowed by load would call an answer stalled that the device
has not had the time to send, and ask again until the ring has moved past the hole. So with ``stall_samples`` an
answer is stalled only once the live stream has also moved that many samples past its last progress (the device
had the time to send it) — or, with no live data at all, after ``WALL_FALLBACK`` timeouts. Whatever the device says it cannot serve is marked lost: ACK
UNAVAILABLE, or the part older than its ring (the ACK's ``first_seq`` past the ``from_seq`` asked for). A chunk
refused as UNAVAILABLE in a longer hole is the oldest part of it: one request over the whole hole then tells where
the ring begins, and the chunk is asked again from there.

No event loop: ``next_request`` and ``answer`` return the (from_seq, max_samples) to send, the session sends it and
hands the ACK back, and ranges are marked lost through the ``lose`` callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hipcheck.device.wire import forward
from hipcheck.protocol import Status

MAX_SAMPLES = 0xFFFF  # a BACKFILL asks for at most this many samples (u16 max_samples)
RING_OLDER = "older than the device's ring buffer"
WALL_FALLBACK = 10  # timeouts after which an answer counts as stalled even with no live progress to tell


@dataclass
class Answer:
    """The BACKFILL answer under way: samples [start, end), expected to keep coming until ``deadline``."""

    start: int
    end: int
    deadline: float
    live_mark: int | None = None  # the live stream's next seq at the answer's last progress


@dataclass
class Request:
    """A request sent: samples [a, a + n) of the hole [a, b). stage: "chunk" (the first for this hole), "whole"
    (over the whole hole, to learn where the ring begins) or "rechunk" (the chunk again from there)."""

    a: int
    b: int
    n: int
    stage: str = "chunk"


class BackfillPlan:
    """chunk: samples asked per request; tries: requests per hole; timeout_s: how long an answer may stall;
    lose(a, b, reason): marks [a, b) lost; stall_samples: live samples that must also pass (0: the wall clock
    alone) (module docstring). ``live_next``, where given, is the live stream's next sequence number."""

    def __init__(self, chunk: int, tries: int, timeout_s: float, lose: Callable[[int, int, str], None],
                 stall_samples: int = 0):
        self.chunk = chunk
        self.tries = tries
        self.timeout_s = timeout_s
        self.stall_samples = stall_samples
        self.lose = lose
        self.answer_due: Answer | None = None  # the answer under way
        self._request: Request | None = None  # the request whose ACK is awaited
        self._asked: dict[tuple[int, int], int] = {}  # requests so far per hole (a, b)

    def next_request(self, missing: list[tuple[int, int]], now: float,
                     live_next: int | None = None) -> tuple[int, int] | None:
        """The holes still open (lowest first): (from_seq, max_samples) to ask for now, or None (nothing to ask,
        or an answer under way)."""
        due = self.answer_due
        if due is not None:
            if not self._stalled(due, now, live_next) and any(a < due.end and b > due.start for a, b in missing):
                return None
            self.answer_due = None
        if not missing:
            return None
        hole = a, b = missing[0]
        asked = self._asked.get(hole, 0)
        if asked >= self.tries:
            self.lose(a, b, f"no backfill after {asked} requests")
            return None
        self._asked[hole] = asked + 1
        return self._ask(Request(a, b, self._size(a, b)))

    def answer(self, status: int, fields: dict, now: float, live_next: int | None = None) -> tuple[int, int] | None:
        """The ACK to the last request (its status and fields): the next request of this exchange, or None."""
        r = self._request
        self._request = None
        if r is None:
            return None
        if r.stage == "chunk" and status == Status.UNAVAILABLE and r.b - r.a > r.n:
            return self._ask(Request(r.a, r.b, r.n, "whole"))
        if r.stage == "whole" and status == Status.OK:
            first = forward(r.a, fields["first_seq"])
            self.lose(r.a, first, RING_OLDER)
            return self._ask(Request(first, r.b, self._size(first, r.b), "rechunk"))  # replaces the long answer
        a, n = r.a, r.n
        if status == Status.UNAVAILABLE:
            self.lose(a, a + n, "the device no longer holds these samples (ACK UNAVAILABLE)")
        elif status != Status.OK:
            self.lose(a, a + n, f"BACKFILL refused: {Status(status).name}")
        else:
            first = forward(a, fields["first_seq"])
            if first > a:
                self.lose(a, min(first, a + n), RING_OLDER)
            if fields["count"]:
                self.answer_due = Answer(first, first + fields["count"], now + self.timeout_s, live_next)
        return None

    def received(self, end: int, now: float, live_next: int | None = None) -> bool:
        """Backfilled samples up to ``end`` (exclusive) came in: the answer is alive. True when it is complete."""
        due = self.answer_due
        if due is None:
            return False
        due.deadline = now + self.timeout_s
        due.live_mark = live_next
        return end >= due.end

    def _stalled(self, due: Answer, now: float, live_next: int | None) -> bool:
        if now < due.deadline:
            return False
        if not self.stall_samples or live_next is None or due.live_mark is None:
            return True
        return live_next - due.live_mark >= self.stall_samples or \
            now >= due.deadline + (WALL_FALLBACK - 1) * self.timeout_s

    def _ask(self, request: Request) -> tuple[int, int]:
        self._request = request
        if request.stage == "whole":
            return request.a, min(request.b - request.a, MAX_SAMPLES)
        return request.a, request.n

    def _size(self, a: int, b: int) -> int:
        return min(b - a, self.chunk, MAX_SAMPLES)
