"""Time recipe-archive inspection on decompression bombs and on legitimate archives.

Calls chalicelib.domain.ims.recipe_archive.inspect_archive directly, with the service's default
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
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from chalicelib.domain.ims.recipe_archive import inspect_archive  # noqa: E402
from chalicelib.domain.uploads.archive_safety import ArchiveRejected  # noqa: E402
from tests.ims.archive_bombs import (  # noqa: E402
    BLOCK,
    END_OF_ARCHIVE,
    RECIPE_MEMBER,
    concatenated_bomb,
    empty_members_bomb,
    gzip_repeating,
    huge_pax_header,
    lying_bomb,
    pax_header_chain,
    tar_header,
    zeros_bomb,
)

MiB = 1024 * 1024
MAX_BYTES = 64 * MiB  # the defaults of KILN_RECIPE_MAX_BYTES and KILN_RECIPE_MAX_MEMBERS
MAX_MEMBERS = 2000
GOAL_SECONDS = 1.0


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
    head = RECIPE_MEMBER + tar_header("disk.img", 500 * MiB)
    return gzip_repeating(head, unit, 500, END_OF_ARCHIVE)


#: (case, builder, roughly what it unpacks to (None: measure it), is it a bomb)
CASES: list[tuple[str, Callable[[], bytes], int | None, bool]] = [
    ("zeros 1 GiB (declared)", lambda: zeros_bomb(1024), 1024 * MiB, True),
    ("zeros 500 MiB (under cap)", lambda: zeros_bomb(500), 500 * MiB, True),
    ("lying headers, 1 GiB 0s", lying_bomb, 1024 * MiB, True),
    ("1024 gzip members x 1 MiB", concatenated_bomb, 1024 * MiB, True),
    ("3M empty gzip members", lambda: empty_members_bomb(60 * MiB // 20), 3 * BLOCK, True),
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
