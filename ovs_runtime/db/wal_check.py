"""Inspect an SQLite write-ahead log before opening it, to report a torn tail.

SQLite's own recovery already ignores WAL frames past the last valid commit, so a crash
can never make the database unreadable. What SQLite does silently, the operator should
hear about: this reader walks the WAL format (https://sqlite.org/fileformat2.html#walformat)
and counts the frames and bytes that recovery will drop.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

WAL_HEADER = 32
FRAME_HEADER = 24
MAGIC_LE, MAGIC_BE = 0x377F0682, 0x377F0683


@dataclass(frozen=True)
class WalReport:
    committed_frames: int
    dropped_frames: int
    dropped_bytes: int

    @property
    def torn(self) -> bool:
        return self.dropped_frames > 0 or self.dropped_bytes > 0


def _checksum(data: bytes, big_endian: bool, s0: int, s1: int) -> tuple[int, int]:
    words = struct.unpack((">" if big_endian else "<") + f"{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def inspect_wal(path: str) -> WalReport | None:
    """Describe the WAL at ``path``; None if there is none or it holds no header yet."""
    try:
        with open(path, "rb") as wal:
            data = wal.read()
    except FileNotFoundError:
        return None
    if len(data) < WAL_HEADER:
        return WalReport(0, 0, len(data)) if data else None
    magic, _version, page_size, _seq, salt1, salt2, c0, c1 = struct.unpack(">8I", data[:32])
    if magic not in (MAGIC_LE, MAGIC_BE):
        return WalReport(0, 0, len(data))
    big_endian = magic == MAGIC_BE
    if _checksum(data[:24], big_endian, 0, 0) != (c0, c1):
        return WalReport(0, 0, len(data) - WAL_HEADER)
    frame_size = FRAME_HEADER + page_size
    s0, s1 = c0, c1
    offset = WAL_HEADER
    frames = committed = 0
    while offset + frame_size <= len(data):
        page_no, db_size, fsalt1, fsalt2, f0, f1 = struct.unpack(
            ">6I", data[offset : offset + FRAME_HEADER]
        )
        if (fsalt1, fsalt2) != (salt1, salt2):
            break  # a frame of an earlier WAL generation: stale, not torn
        s0, s1 = _checksum(data[offset : offset + 8], big_endian, s0, s1)
        s0, s1 = _checksum(data[offset + FRAME_HEADER : offset + frame_size], big_endian, s0, s1)
        if (s0, s1) != (f0, f1) or page_no == 0:
            frames += 1  # a corrupt frame ends the log; count it as dropped
            break
        frames += 1
        offset += frame_size
        if db_size:
            committed = frames
    dropped_frames = frames - committed
    # Bytes past the last frame that parsed, short of a whole frame, are a torn write.
    partial = len(data) - offset if 0 < len(data) - offset < frame_size else 0
    return WalReport(committed, dropped_frames, partial)


def wal_path(db_path: str) -> str:
    return db_path + "-wal"
