"""The session log on flash (``store.Store``): written while the device runs, listed, downloaded and erased by
command.

Content: the concatenated payloads of a session's blocks are a sequence of v1 packets, each self-delimiting: DATA
(full form, the samples of each FIFO read, up to 23 per packet) and EVENT (alerts, overruns). LOG_DOWNLOAD sends a
session's raw blocks (store.BLOCK_SIZE bytes: header, payload, CRC) as LOG_CHUNKs of up to MTU - 3 - 9 bytes, a
burst per pump, from the block asked for (a host resumes where its verified copy ends). A block that fails its CRC
on flash is sent as it lies there, so that the host's own check reports it (it is not skipped in silence); one
whose slot cannot be found is skipped (the host sees the missing number). The download ends as its last chunk is
handed to the link, and when the host goes (``cancel_download``). Writing and the download's chunks allocate
nothing per sample on a 64-bit port (the chunk is copied by viper); commands may allocate (they are rare).
"""

import struct

from micropython import const

import packet

_LOG_BURST = const(4)  # LOG_CHUNKs per pump


class SessionLog:
    """store: a ``store.Store``; clock: ``sampling.DeviceClock`` (a new session's start time). ``active``: a
    session is being written (``begin`` .. ``end``)."""

    def __init__(self, store, clock):
        from store import BLOCK_SIZE, copy_bytes  # here: a board with logging off never loads store
        self._copy_bytes = copy_bytes
        self.store = store
        self._clock = clock
        self.active = False
        self._buf = bytearray(packet.DATA_HEADER_LEN + packet.WIRE_SAMPLE_LEN * packet.MAX_SAMPLES_PER_PACKET)
        self.downloading = None  # in progress: [session_id, block, offset, n_blocks]
        self._dl_read = -1  # the block in _blk
        self._blk = bytearray(BLOCK_SIZE)

    # ------------------------------------------------------------------------------------------------- writing
    def begin(self, start_time_s):
        self.store.begin(start_time_s)
        self.active = True

    def end(self):
        self.active = False
        self.store.close()

    def write(self, buf, n):
        """A packet (an EVENT) into the session."""
        self.store.write(buf, n)

    def write_samples(self, seq, t_us, t_hi, period_us, quat, acc, gyr, flags, n):
        """n samples of the batch arrays as DATA packets: the first one seq at device time t_hi * 2^30 + t_us (as
        packet.encode_data), period_us apart."""
        buf = self._buf
        k = 0
        while k < n:
            m = n - k
            if m > packet.MAX_SAMPLES_PER_PACKET:
                m = packet.MAX_SAMPLES_PER_PACKET
            L = packet.encode_data(buf, seq + k, t_us + k * period_us, t_hi, period_us, quat, acc, gyr, flags, k, m,
                                   0)
            self.store.write(buf, L)
            k += m

    # ------------------------------------------------------------------------------- commands: (status, fields...)
    def list(self, index, with_flags=False):
        """LOG_LIST: the number of sessions and session index's id, start time, blocks, and with_flags its flags
        (LOG_OPEN: the session being written, which grows and cannot be erased now)."""
        store = self.store
        e = store.session(index)
        if e is None:
            return (packet.UNAVAILABLE,)
        if not with_flags:
            return packet.OK, store.n_sessions, e[0], e[1], e[2]
        flags = packet.LOG_OPEN if e[0] == store.session_id else 0
        return packet.OK, store.n_sessions, e[0], e[1], e[2], flags

    def download(self, session_id, from_block):
        """LOG_DOWNLOAD: the session's blocks from from_block on, sent by pump()."""
        n_blocks = self.store.n_blocks(session_id)
        if n_blocks < 0:
            return (packet.UNAVAILABLE,)
        # from_block at or past the end: nothing to send (the ACK's n_blocks tells the host it has them all)
        self.downloading = [session_id, from_block, 0, n_blocks] if from_block < n_blocks else None
        self._dl_read = -1
        return packet.OK, n_blocks

    def erase(self, session_id):
        """LOG_ERASE (0xFFFF: all): BUSY during a download or for the session being written, STORAGE_ERROR when
        the flash fails; erasing everything while writing starts a new session."""
        if self.downloading is not None:
            return (packet.BUSY,)
        store = self.store
        try:
            found = store.erase(session_id)
        except OSError as e:
            # the session being written cannot be erased (StoreError, an OSError): BUSY; else the flash failed
            return (packet.BUSY if type(e).__name__ == "StoreError" else packet.STORAGE_ERROR,)
        if self.active and store.session_id < 0:
            store.begin(self._clock.seconds())
        return (packet.OK if found else packet.UNAVAILABLE,)

    def cancel_download(self):
        """The host went: the download under way ends (the next host asks again from its own verified block)."""
        self.downloading = None

    # ------------------------------------------------------------------------------------------------ download
    def pump(self, tx, mtu, send):
        """Send up to a burst of LOG_CHUNKs of the download in progress, encoded in tx, with send (link MTU mtu).
        Returns the length of a chunk send refused (it stays in tx), else 0."""
        dl = self.downloading
        if dl is None:
            return 0
        room = mtu - 3 - 9
        if room > packet.MAX_PACKET_LEN - 9:
            room = packet.MAX_PACKET_LEN - 9
        burst = _LOG_BURST
        blk = self._blk
        while burst:
            sid, block, offset, n_blocks = dl
            if block >= n_blocks:
                self.downloading = None
                return 0
            if self._dl_read != block:
                try:
                    self.store.read_block(sid, block, blk)
                except OSError:  # damaged: sent as it lies on flash (the host's CRC check reports it); not found
                    if not self.store.read_raw(sid, block, blk):  # (erased meanwhile): the host sees the gap
                        dl[1] = block + 1
                        continue
                self._dl_read = block
            m = len(blk) - offset
            if m > room:
                m = room
            # the header as packet.encode_log_chunk writes it; the data copied without a memoryview slice
            struct.pack_into("<BHIH", tx, 0, packet.KIND_LOG_CHUNK, sid, block, offset)
            self._copy_bytes(tx, 9, blk, offset, m)
            n = 9 + m
            if offset + m >= len(blk):
                dl[1] = block + 1
                dl[2] = 0
                if block + 1 >= n_blocks:
                    self.downloading = None  # done as the last chunk goes: an erase right after is not BUSY
            else:
                dl[2] = offset + m
            if not send(tx, n):
                return n
            if self.downloading is None:
                return 0
            burst -= 1
        return 0
