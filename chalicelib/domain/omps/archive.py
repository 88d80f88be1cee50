"""An OMPS push's zip archive (omps-behaviour.md §4): the uploaded file's name, then the
archive checked and extracted into a directory, with upstream's checks and messages in
upstream's order, and Kiln's fixes (§15.2, §15.3).

1. the uploaded file's name ends in ``.zip``, any case (``check_file_name``, the face's);
2. the bytes are a zip (``File is not a zip file``, or zipfile's other reason);
3. Kiln: at most ``max_entries`` entries;
4. the sizes the entries *declare* add up to at most ``max_bytes``;
5. Kiln: no entry with a ``..`` component or an absolute path, no symbolic link (nor a device,
   fifo or socket): refused, naming the entry, where upstream rewrites and accepts them;
6. entry by entry, in the archive's order: an encrypted one is refused, and its data is
   decompressed, counted and written. Declared sizes lie, so the bytes really produced are
   counted against ``max_bytes`` as they come (a bomb is stopped once past the limit, whatever
   its headers say); an entry that produces more than it declares, whose data is cut short or
   corrupt, or whose CRC-32 differs fails upstream's CRC check.

``extract`` returns ``extracted_files``: the sorted relative paths of every regular file."""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator

from chalicelib.domain.omps.errors import OMPSUploadedFileError

ALLOWED_EXTENSIONS = {".zip"}
#: most bytes one decompressor call may produce, so the limit is checked at least this often
INFLATE_STEP = 256 * 1024
#: most compressed bytes given to one decompressor call (what it leaves over is copied)
FEED_STEP = 64 * 1024
#: one local file header (APPNOTE 4.3.7), before its name and extra field
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIG = b"PK\x03\x04"
_ENCRYPTED = 0x1
_UTF8_NAME = 0x800
#: what zipfile raises on a malformed archive besides BadZipFile
_UNREADABLE = (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error)


def check_file_name(filename: str) -> None:
    """The uploaded file's extension must be one OMPS takes (``.zip``, any case)."""
    _, extension = os.path.splitext(filename)
    if extension.lower() not in ALLOWED_EXTENSIONS:
        raise OMPSUploadedFileError(
            f'Uploaded file extension "{extension}" is not any of {ALLOWED_EXTENSIONS}'
        )


def extract(data: bytes, target: str, *, max_bytes: int, max_entries: int) -> list[str]:
    """Check the zip ``data`` and extract it into the directory ``target``; returns the
    sorted relative paths of the extracted regular files. OMPSUploadedFileError says why not."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except _UNREADABLE as exc:
        raise OMPSUploadedFileError(str(exc) or "File is not a zip file") from exc
    with archive:
        entries = archive.infolist()
        if len(entries) > max_entries:
            raise OMPSUploadedFileError(
                f"Archive has more entries than limit ({len(entries)}>{max_entries})"
            )
        declared = sum(entry.file_size for entry in entries)
        if declared > max_bytes:
            raise OMPSUploadedFileError(
                f"Uncompressed archive is larger than limit ({declared}B>{max_bytes}B)"
            )
        paths = [_safe_parts(entry) for entry in entries]
        budget = _Budget(max_bytes)
        for entry, parts in zip(entries, paths, strict=True):
            _extract_entry(archive, data, entry, parts, target, budget)
    return extracted_files(target)


def extracted_files(root: str) -> list[str]:
    """The sorted relative (``/``-separated) paths of every regular file under ``root``."""
    found = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            found.append(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
    return sorted(found)


class _Budget:
    """The bytes really extracted so far, against the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise OMPSUploadedFileError(
                f"Uncompressed archive is larger than limit ({self.used}B>{self.limit}B)"
            )


def _safe_parts(entry: zipfile.ZipInfo) -> list[str]:
    """The entry's path components; refuses ``..``, absolute paths and anything that is not
    a regular file or a directory (§15.3)."""
    name = entry.filename
    file_type = stat.S_IFMT(entry.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        raise OMPSUploadedFileError(f"Entry '{name}' is a symbolic link, which is not allowed")
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise OMPSUploadedFileError(
            f"Entry '{name}' is not a regular file or directory, which is not allowed"
        )
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        raise OMPSUploadedFileError(f"Entry '{name}' has an absolute path, which is not allowed")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise OMPSUploadedFileError(
            f"Entry '{name}' has a '..' path component, which is not allowed"
        )
    return [part for part in parts if part not in ("", ".")]


def _extract_entry(
    archive: zipfile.ZipFile,
    data: bytes,
    entry: zipfile.ZipInfo,
    parts: list[str],
    target: str,
    budget: _Budget,
) -> None:
    """Check one entry's data and write it under ``target`` (a directory entry: create it)."""
    name = entry.filename
    if entry.flag_bits & _ENCRYPTED:
        raise OMPSUploadedFileError(f"File {name!r} is encrypted, password required for extraction")
    path = os.path.join(target, *parts) if parts else target
    produced, crc = 0, 0
    try:
        if entry.is_dir():
            os.makedirs(path, exist_ok=True)
            return
        if not parts:
            raise OMPSUploadedFileError(f"Entry '{name}' has no file name")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            for piece in _pieces(archive, data, entry):
                budget.take(len(piece))
                produced += len(piece)
                crc = zlib.crc32(piece, crc)
                out.write(piece)
    except OSError as exc:
        raise OMPSUploadedFileError(
            f"Cannot extract entry '{name}': {exc.strerror or exc}"
        ) from exc
    except (zipfile.BadZipFile, EOFError, zlib.error, struct.error):
        raise OMPSUploadedFileError(f"CRC check failed for file {name} in archive") from None
    if crc != entry.CRC or produced > entry.file_size:  # zipfile stops at the declared size
        raise OMPSUploadedFileError(f"CRC check failed for file {name} in archive")


def _pieces(archive: zipfile.ZipFile, data: bytes, entry: zipfile.ZipInfo) -> Iterator[bytes]:
    """The entry's decompressed data, a bounded piece at a time. Stored and deflated data is
    read here, past what the entry declares; other methods through zipfile, which stops at
    the declared size."""
    if entry.compress_type == zipfile.ZIP_STORED:
        stored = _raw_data(data, entry)
        for start in range(0, len(stored), INFLATE_STEP):
            yield stored[start : start + INFLATE_STEP]
    elif entry.compress_type == zipfile.ZIP_DEFLATED:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        raw = memoryview(_raw_data(data, entry))
        taken = 0
        pending: bytes | memoryview = b""
        while not inflater.eof:
            if not pending and taken < len(raw):
                pending = raw[taken : taken + FEED_STEP]
                taken += len(pending)
            piece = inflater.decompress(pending, INFLATE_STEP)
            pending = inflater.unconsumed_tail
            if piece:
                yield piece
            elif not pending and taken >= len(raw) and not inflater.eof:
                raise EOFError(f"the data of {entry.filename} ends early")
    else:
        try:
            with archive.open(entry) as member:
                while piece := member.read(INFLATE_STEP):
                    yield piece
        except (NotImplementedError, RuntimeError) as exc:
            raise OMPSUploadedFileError(
                f"File {entry.filename!r} cannot be extracted: {exc}"
            ) from exc


def _raw_data(data: bytes, entry: zipfile.ZipInfo) -> bytes:
    """The entry's compressed bytes, after its local header, which must name it as the
    central directory does."""
    offset = entry.header_offset
    header = data[offset : offset + _LOCAL.size]
    if len(header) != _LOCAL.size:
        raise zipfile.BadZipFile("Truncated file header")
    fields = _LOCAL.unpack(header)
    if fields[0] != _LOCAL_SIG:
        raise zipfile.BadZipFile("Bad magic number for file header")
    name_length, extra_length = fields[-2:]
    name_start = offset + _LOCAL.size
    encoding = "utf-8" if entry.flag_bits & _UTF8_NAME else "cp437"
    if data[name_start : name_start + name_length] != entry.orig_filename.encode(encoding):
        raise zipfile.BadZipFile("File name in directory and header differ")
    start = name_start + name_length + extra_length
    raw = data[start : start + entry.compress_size]
    if len(raw) != entry.compress_size:
        raise EOFError(f"the data of {entry.filename} ends early")
    return raw
