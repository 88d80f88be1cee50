"""Time recipe-archive inspection on decompression bombs and on legitimate archives.

Calls chalicelib.domain.recipe_archive.inspect_archive directly, with the service's default
limits (64 MiB compressed, 2000 members), feeding the archive in 1 MiB chunks as the S3 stream
does. For each case: compressed size, what it would unpack to, the outcome and the median time
to it over --repeat runs. Goal: every bomb refused in under 1 s; the legitimate archives accepted
(the 500 MiB one, at a ratio just under the limit, is the most work the limits let through).
Run: .venv/bin/python bench/archive_bombs.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import io
import random
import statistics
import struct
import sys
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from chalicelib.domain.recipe_archive import ArchiveRejected, inspect_archive  # noqa: E402

MiB = 1024 * 1024
MAX_BYTES = 64 * MiB  # the defaults of KILN_RECIPE_MAX_BYTES and KILN_RECIPE_MAX_MEMBERS
MAX_MEMBERS = 2000
GOAL_SECONDS = 1.0
BLOCK = tarfile.BLOCKSIZE
END_OF_ARCHIVE = bytes(2 * BLOCK)


def gzip_repeating(head: bytes, unit: bytes, count: int, tail: bytes = b"") -> bytes:
    """One gzip member of head, ``unit`` ``count`` times, tail: the unit is compressed once after
    a full flush (so it refers to nothing before it) and its deflate block repeated."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    start = deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(unit) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.compress(tail) + deflate.flush()
    crc = zlib.crc32(head)
    for _ in range(count):
        crc = zlib.crc32(unit, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + count * len(unit) + len(tail)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + start + block * count + end + struct.pack("<II", crc, size % 2**32)


def tar_header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    return info.tobuf(format=tarfile.USTAR_FORMAT)


RECIPE = tar_header("recipe.yaml", 11) + b"name: bomb\n".ljust(BLOCK, b"\0")
ZEROS = bytes(MiB)


def zeros_bomb(mib: int) -> bytes:
    return gzip_repeating(RECIPE + tar_header("zeros.img", mib * MiB), ZEROS, mib, END_OF_ARCHIVE)


def lying_bomb() -> bytes:
    notes = tar_header("notes.txt", 10) + b"ten bytes\n".ljust(BLOCK, b"\0")
    return gzip_repeating(RECIPE + notes, ZEROS, 1024)


def concatenated_bomb() -> bytes:
    headers = gzip.compress(RECIPE + tar_header("zeros.img", 500 * MiB))
    return headers + gzip.compress(ZEROS, 9) * 1024


def empty_members_bomb() -> bytes:
    return gzip.compress(RECIPE + END_OF_ARCHIVE) + gzip.compress(b"") * (60 * MiB // 20)


def huge_pax_header() -> bytes:
    pax = tar_header("././@PaxHeader", 1024 * MiB, tarfile.XHDTYPE)
    return gzip_repeating(RECIPE + pax, ZEROS, 1024)


def pax_header_chain() -> bytes:
    record = b"13 comment=x\n"
    pax = tar_header("././@PaxHeader", len(record), tarfile.XHDTYPE) + record.ljust(BLOCK, b"\0")
    return gzip.compress(RECIPE + pax * 10_000 + tar_header("f", 0) + END_OF_ARCHIVE)


def legitimate_20mib() -> bytes:
    """About 20 MiB of what recipes hold: config and script text, and some small binaries."""
    rng = random.Random(20)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(2, 10)))
        for _ in range(4000)
    ]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("recipe.yaml", b"name: legit\npackages: [openssh-server, vim]\n")
        for i in range(160):  # ~16 MiB of text
            lines = (" ".join(rng.choices(words, k=12)) for _ in range(1700))
            add(f"files/etc/conf{i:03}.conf", "\n".join(lines).encode()[: 100 * 1024])
        for i in range(8):  # 4 MiB of incompressible binaries
            add(f"files/usr/bin/tool{i}", rng.randbytes(512 * 1024))
    return buffer.getvalue()


def dense_500mib() -> bytes:
    """500 MiB at about 90 times: under the ratio and the unpacked cap, so accepted."""
    unit = random.Random(500).randbytes(MiB // 100) + bytes(MiB - MiB // 100)
    head = RECIPE + tar_header("disk.img", 500 * MiB)
    return gzip_repeating(head, unit, 500, END_OF_ARCHIVE)


#: (case, builder, roughly what it unpacks to (None: measure it), is it a bomb)
CASES: list[tuple[str, Callable[[], bytes], int | None, bool]] = [
    ("zeros 1 GiB (declared)", lambda: zeros_bomb(1024), 1024 * MiB, True),
    ("zeros 500 MiB (under cap)", lambda: zeros_bomb(500), 500 * MiB, True),
    ("lying headers, 1 GiB 0s", lying_bomb, 1024 * MiB, True),
    ("1024 gzip members x 1 MiB", concatenated_bomb, 1024 * MiB, True),
    ("3M empty gzip members", empty_members_bomb, 3 * BLOCK, True),
    ("pax header of 1 GiB", huge_pax_header, 1024 * MiB, True),
    ("10k chained pax headers", pax_header_chain, None, True),
    ("legitimate 20 MiB", legitimate_20mib, None, False),
    ("dense 500 MiB (ratio ~90)", dense_500mib, 500 * MiB, False),
]


def chunks(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), MiB):
        yield data[start : start + MiB]


def inspect_once(archive: bytes) -> tuple[float, str]:
    start = time.perf_counter()
    try:
        facts = inspect_archive(chunks(archive), "kiln-noop", MAX_BYTES, MAX_MEMBERS)
        outcome = f"accepted ({facts.members} members)"
    except ArchiveRejected as exc:
        outcome = f"refused: {exc}"
    return time.perf_counter() - start, outcome


def size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n / 1024:.0f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median shown)")
    repeat = parser.parse_args().repeat
    header = (
        f"{'case':<27} {'gzip':>9} {'unpacks':>10} {'ratio':>6} {'median ms':>10} "
        f"{'goal':>7} {'ok':>3}  outcome"
    )
    print(header)
    print("-" * (len(header) + 50))
    for name, build, nominal, is_bomb in CASES:
        archive = build()
        unpacked = nominal if nominal is not None else len(gzip.decompress(archive))
        runs = [inspect_once(archive) for _ in range(repeat)]
        seconds = statistics.median(t for t, _ in runs)
        outcome = runs[0][1]
        refused = outcome.startswith("refused")
        if is_bomb:
            goal, ok = "< 1 s", refused and seconds < GOAL_SECONDS
        else:
            goal, ok = "accept", not refused
        print(
            f"{name:<27} {size(len(archive)):>9} {size(unpacked):>10} "
            f"{unpacked / len(archive):>6.0f} {seconds * 1000:>10.1f} {goal:>7} "
            f"{'yes' if ok else 'NO':>3}  {outcome}",
            flush=True,
        )


if __name__ == "__main__":
    main()
