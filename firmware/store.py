"""The session log on flash: sessions appended to one file in fixed-size blocks, each with a header and a CRC-32.

On a board the file lives on the littlefs filesystem (`/log.bin`); in the unix port it is an ordinary file that
stands for the flash partition. The file is only ever appended to (littlefs is copy-on-write and fastest that way),
except that a torn block at its end is overwritten by the next one, and erasing a session rewrites the file
without it (a temporary file, then an atomic rename).

Block format, version 1 (BLOCK_SIZE = 512 bytes, little-endian):

    offset  size  field
    0       2     magic 0x4C48 (the bytes "HL")
    2       1     format version (1)
    3       1     flags (0; reserved)
    4       2     session_id (0-0xFFFE)
    6       2     length: payload bytes used (0-492)
    8       4     block number within the session (0, 1, 2, ...)
    12      4     start_time_s of the session (device RTC or uptime, as in LOG_LIST)
    16      492   payload (bytes past `length` are zero)
    508     4     CRC-32 (IEEE 802.3, as zlib.crc32) of bytes 0-507

A block is written as bytes 0-507 and then, in a second write, its CRC: a reset in between (or in the middle of
either) leaves a block whose CRC does not match or a file that ends inside a block. Mounting finds the end of the
log as the first slot that is short or whose CRC fails after the last good one; so a reset loses at most the
block being written (and the data buffered for it in RAM). LOG_DOWNLOAD sends whole blocks (header, payload and
CRC), so the host checks every block itself.

    st = Store("/log.bin", max_blocks=2048)
    sid = st.begin(start_time_s)          # a new session
    st.write(data)                        # buffered; each full block is written at once
    st.sync()                             # write the partial block now (bounds the loss to what follows)
    st.end()
    st.n_sessions; st.session(index) -> (session_id, start_time_s, n_blocks)   # LOG_LIST
    st.session_id                         # the session being written (-1: none): LOG_LIST's OPEN flag
    st.read_block(session_id, block, buf)  -> payload length; buf holds the raw 512-byte block (LOG_DOWNLOAD)
    st.read_raw(session_id, block, buf)    -> the block's slot as it is, a failed CRC included (LOG_DOWNLOAD)
    st.erase(session_id); st.erase(ERASE_ALL)
"""

import micropython
import os
import struct
from array import array
from micropython import const

BLOCK_SIZE = const(512)
HEADER_SIZE = const(16)
PAYLOAD_SIZE = const(492)  # BLOCK_SIZE - HEADER_SIZE - 4
MAGIC = const(0x4C48)
VERSION = const(1)
ERASE_ALL = const(0xFFFF)
_CRC_AT = const(508)
_HEADER = "<HBBHHII"

try:
    from binascii import crc32 as _crc32_c
except ImportError:  # a port built without it
    _crc32_c = None

_TABLE = array("I", [0] * 256)


def _make_table():
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        _TABLE[i] = c


_make_table()


@micropython.viper
def _crc32_viper(buf, n: int) -> uint:
    t = ptr32(_TABLE)
    p = ptr8(buf)
    crc = uint(0xFFFFFFFF)
    i = 0
    while i < n:
        crc = uint(t[(crc ^ uint(p[i])) & 0xFF]) ^ (crc >> 8)
        i += 1
    return crc ^ uint(0xFFFFFFFF)


@micropython.viper
def _put_crc32(buf, n: int):
    # CRC-32 of buf[0:n] written into buf[n:n + 4] (little-endian) without a Python int: a u32 is a big int on a
    # 32-bit port, and this runs once per block on the sampling path
    t = ptr32(_TABLE)
    p = ptr8(buf)
    crc = uint(0xFFFFFFFF)
    i = 0
    while i < n:
        crc = uint(t[(crc ^ uint(p[i])) & 0xFF]) ^ (crc >> 8)
        i += 1
    crc = crc ^ uint(0xFFFFFFFF)
    p[n] = crc
    p[n + 1] = crc >> 8
    p[n + 2] = crc >> 16
    p[n + 3] = crc >> 24


def crc32(view, use_c=True):
    """CRC-32 (zlib's) of the bytes of ``view``: binascii.crc32 where the port has it, else a table in viper. Pass a
    memoryview made once: slicing here would allocate for every block."""
    if use_c and _crc32_c is not None:
        return _crc32_c(view) & 0xFFFFFFFF
    return _crc32_viper(view, len(view)) & 0xFFFFFFFF


@micropython.viper
def _copy(dst, doff: int, src, soff: int, n: int):
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    while i < n:
        d[doff + i] = s[soff + i]
        i += 1


@micropython.viper
def _zero(dst, off: int, n: int):
    d = ptr8(dst)
    i = 0
    while i < n:
        d[off + i] = 0
        i += 1


@micropython.viper
def _u16(buf, off: int) -> int:
    p = ptr8(buf)
    return p[off] | (p[off + 1] << 8)


@micropython.viper
def _u32(buf, off: int) -> uint:
    p = ptr8(buf)
    return uint(p[off]) | (uint(p[off + 1]) << 8) | (uint(p[off + 2]) << 16) | (uint(p[off + 3]) << 24)


def copy_bytes(dst, doff, src, soff, n):
    """dst[doff:doff + n] = src[soff:soff + n] for bytearrays and memoryviews, without allocating (viper)."""
    _copy(dst, doff, src, soff, n)


class StoreError(OSError):
    pass


class Store:
    """The log file at `path`, at most max_blocks blocks (max_blocks * 512 bytes). Counters from the mount:
    `torn` (0 or 1: a block cut short by a reset, overwritten by the next write), `bad_blocks` (slots inside
    the log that fail their check: skipped). `full` turns True when a block could not be written for lack of
    space (the session keeps what it has; `blocks_lost` counts the rest)."""

    def __init__(self, path, max_blocks=2048, use_c_crc=True):
        self.path = path
        self.max_blocks = max_blocks
        self._use_c = use_c_crc
        self._blk = bytearray(BLOCK_SIZE)
        self._mv = memoryview(self._blk)
        self._head = self._mv[:_CRC_AT]
        self._tail = self._mv[_CRC_AT:]
        self._rd = bytearray(BLOCK_SIZE)
        self._rd_head = memoryview(self._rd)[:_CRC_AT]
        self._f = None
        self._session = -1  # the session being written, or -1
        self._block = 0
        self._fill = 0
        self._start_s = 0
        self.full = False
        self.blocks_lost = 0
        self.blocks_written = 0  # blocks of the current session written so far
        self._mount()

    # ------------------------------------------------------------------------------------------------- mount
    def _open(self):
        try:
            self._f = open(self.path, "r+b")
        except OSError:
            self._f = open(self.path, "w+b")

    def _mount(self):
        self._open()
        f = self._f
        size = f.seek(0, 2)
        n_slots = size // BLOCK_SIZE
        self.torn = 1 if size % BLOCK_SIZE else 0
        self.bad_blocks = 0
        # sessions: [session_id, start_time_s, first_slot, last_slot, n_blocks], in file order
        self._sessions = []
        hdr = memoryview(self._rd)[:HEADER_SIZE]
        last = None
        end = 0  # slots in use: the next block goes to slot `end`
        for slot in range(n_slots):
            f.seek(slot * BLOCK_SIZE)
            f.readinto(hdr)
            magic, ver, _, sid, length, block, start_s = struct.unpack_from(_HEADER, self._rd, 0)
            ok = magic == MAGIC and ver == VERSION and length <= PAYLOAD_SIZE and sid != ERASE_ALL
            if ok and slot == n_slots - 1:
                ok = self._read_slot(slot)  # only the last block can be torn: check its CRC now
            if not ok:
                if slot == n_slots - 1:
                    self.torn = 1
                else:
                    self.bad_blocks += 1
                    end = slot + 1
                continue
            end = slot + 1
            if last is not None and last[0] == sid and block == last[4]:
                last[3] = slot
                last[4] = block + 1
            elif last is not None and last[0] == sid and block > last[4]:
                last[3] = slot  # blocks lost to bad slots in between
                last[4] = block + 1
            else:
                last = [sid, start_s, slot, slot, block + 1]
                self._sessions.append(last)
        self._end = end

    def _read_slot(self, slot):
        """Slot into self._rd; True when it holds a whole block with a good CRC."""
        f = self._f
        f.seek(slot * BLOCK_SIZE)
        if f.readinto(self._rd) != BLOCK_SIZE:
            return False
        # read without struct (its tuple would allocate on every block a download reads)
        return crc32(self._rd_head, self._use_c) == _u32(self._rd, _CRC_AT)

    # ------------------------------------------------------------------------------------------------- list
    @property
    def n_sessions(self):
        return len(self._sessions)

    def session(self, index):
        """LOG_LIST entry `index` (0 = oldest): (session_id, start_time_s, n_blocks), or None past the end."""
        if not 0 <= index < len(self._sessions):
            return None
        s = self._sessions[index]
        return s[0], s[1], s[4]

    def _find(self, session_id):
        for s in self._sessions:
            if s[0] == session_id:
                return s
        return None

    def n_blocks(self, session_id):
        """Blocks in the session (LOG_DOWNLOAD's n_blocks), or -1 if there is no such session."""
        s = self._find(session_id)
        return -1 if s is None else s[4]

    @property
    def free_blocks(self):
        return self.max_blocks - self._end

    @property
    def session_id(self):
        """The session being written, or -1."""
        return self._session

    # ------------------------------------------------------------------------------------------------- read
    def read_block(self, session_id, block, buf=None):
        """Block `block` of the session, the raw BLOCK_SIZE bytes into buf (default: an internal buffer,
        returned by `block_buffer`). Returns the payload length; raises StoreError when the session or block
        does not exist or the block fails its CRC."""
        s = self._find(session_id)
        if s is None:
            raise StoreError("no log session %d" % session_id)
        if not 0 <= block < s[4]:
            raise StoreError("session %d has %d blocks; no block %d" % (session_id, s[4], block))
        slot = s[2] + block
        if slot > s[3] or not self._check(slot, session_id, block):
            slot = -1
            for k in range(s[2], s[3] + 1):  # a bad slot earlier in the session shifted the rest
                if self._check(k, session_id, block):
                    slot = k
                    break
            if slot < 0:
                raise StoreError("session %d block %d is damaged (CRC)" % (session_id, block))
        if buf is not None:
            _copy(buf, 0, self._rd, 0, BLOCK_SIZE)
        return _u16(self._rd, 6)

    def read_raw(self, session_id, block, buf):
        """The slot where block `block` of the session should lie, its BLOCK_SIZE bytes as they are into buf,
        whatever its CRC says (LOG_DOWNLOAD of a damaged block: the host's check reports it). False when the
        session or the slot does not exist."""
        s = self._find(session_id)
        if s is None or not 0 <= block < s[4] or s[2] + block > s[3]:
            return False
        f = self._f
        f.seek((s[2] + block) * BLOCK_SIZE)
        if f.readinto(self._rd) != BLOCK_SIZE:
            return False
        _copy(buf, 0, self._rd, 0, BLOCK_SIZE)
        return True

    def _check(self, slot, session_id, block):
        if not self._read_slot(slot):
            return False
        return _u16(self._rd, 4) == session_id and _u32(self._rd, 8) == block

    @property
    def block_buffer(self):
        """The buffer read_block fills when given none (valid until the next call)."""
        return self._rd

    def chunks(self, session_id, from_block, chunk_len):
        """For LOG_DOWNLOAD: yields (block, offset, memoryview of up to chunk_len bytes) over the raw blocks
        from `from_block` on (resumable: ask again from the block where a link dropped)."""
        n = self.n_blocks(session_id)
        mv = memoryview(self._rd)
        for b in range(from_block, n):
            self.read_block(session_id, b)
            off = 0
            while off < BLOCK_SIZE:
                m = min(chunk_len, BLOCK_SIZE - off)
                yield b, off, mv[off:off + m]
                off += m

    # ------------------------------------------------------------------------------------------------- write
    def begin(self, start_time_s=0):
        """Start a new session (ending one in progress); returns its id."""
        if self._session >= 0:
            self.end()
        ids = [s[0] for s in self._sessions]
        sid = (max(ids) + 1) if ids else 0
        if sid >= ERASE_ALL:
            sid = 0
            while sid in ids:
                sid += 1
        self._session = sid
        self._block = 0
        self._fill = 0
        self._start_s = start_time_s & 0xFFFFFFFF
        self.blocks_written = 0
        self.blocks_lost = 0
        self.full = False
        return sid

    def write(self, data, n=-1):
        """Append data[:n] (bytes, bytearray, array) to the session; full blocks are written at once."""
        if self._session < 0:
            raise StoreError("no session: call begin() first")
        if n < 0:
            n = len(data)
        off = 0
        while off < n:
            m = min(n - off, PAYLOAD_SIZE - self._fill)
            _copy(self._blk, HEADER_SIZE + self._fill, data, off, m)
            self._fill += m
            off += m
            if self._fill == PAYLOAD_SIZE:
                self._commit()

    def sync(self):
        """Write the partly filled block now (the next data starts a new block)."""
        if self._session >= 0 and self._fill:
            self._commit()

    def end(self):
        self.sync()
        if self._session >= 0 and self.blocks_written == 0:
            self._commit()  # an empty session still gets its block, so that it is listed
        self._session = -1

    def _between(self):
        """Between the block's body and its CRC (a test stands a slow flash program time in here)."""
        pass

    def _commit(self):
        fill = self._fill
        self._fill = 0
        if self._end >= self.max_blocks:
            self.full = True
            self.blocks_lost += 1
            return
        blk = self._blk
        _zero(blk, HEADER_SIZE + fill, PAYLOAD_SIZE - fill)
        struct.pack_into(_HEADER, blk, 0, MAGIC, VERSION, 0, self._session, fill, self._block, self._start_s)
        _put_crc32(blk, _CRC_AT)  # what crc32() computes, written without making an int (32-bit ports)
        f = self._f
        slot = self._end
        f.seek(slot * BLOCK_SIZE)
        f.write(self._head)
        self._between()
        f.write(self._tail)
        f.flush()  # littlefs: commits the file; unix: reaches the kernel (what survives the process)
        self._end = slot + 1
        self.torn = 0
        s = self._sessions[-1] if self._sessions else None
        if s is not None and s[0] == self._session:
            s[3] = slot
            s[4] = self._block + 1
        else:
            self._sessions.append([self._session, self._start_s, slot, slot, self._block + 1])
        self._block += 1
        self.blocks_written += 1

    # ------------------------------------------------------------------------------------------------- erase
    def erase(self, session_id):
        """Erase one session, or all with ERASE_ALL (0xFFFF). Returns False if there is no such session.
        The session being written cannot be erased (StoreError: end it first, the device answers BUSY)."""
        if session_id == ERASE_ALL:
            self._f.close()
            try:
                os.remove(self.path)
            except OSError:
                pass
            self._session = -1
            self._mount()
            return True
        s = self._find(session_id)
        if s is None:
            return False
        if session_id == self._session:
            raise StoreError("session %d is being written; end it before erasing it" % session_id)
        tmp = self.path + ".tmp"
        out = open(tmp, "wb")
        try:
            for slot in range(self._end):
                if s[2] <= slot <= s[3]:
                    continue
                self._f.seek(slot * BLOCK_SIZE)
                self._f.readinto(self._rd)
                out.write(self._rd)
            out.flush()
        finally:
            out.close()
        self._f.close()
        os.rename(tmp, self.path)  # atomic on littlefs and POSIX: a reset leaves the old or the new log
        writing = self._session
        self._mount()
        self._session = writing
        return True

    def close(self):
        if self._session >= 0:
            self.end()
        if self._f is not None:
            self._f.close()
            self._f = None
