"""Safe extraction of uploaded archives (.zip / .cbz).

An uploaded archive is hostile until proven otherwise: names may be absolute or climb out with
``..``, entries may be symlinks, and sizes may lie. Everything lands in one fresh folder, and the
caps count the bytes actually written, not the sizes the archive declares.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int = 2000
    max_total_bytes: int = 1_000_000_000
    """Total uncompressed bytes (1 GB)."""


class ArchiveError(ValueError):
    """An archive that is refused; the message names the archive and the entry."""


def extract_archive(path: Path, workdir: Path | None = None, limits: ArchiveLimits | None = None) -> Path:
    """Extract ``path`` into a new folder (inside ``workdir`` when given) and return that folder."""
    limits = limits or ArchiveLimits()
    if path.stat().st_size == 0:
        raise ArchiveError(f"{path}: the file is empty (0 bytes); upload the .zip or .cbz again")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise ArchiveError(f"{path}: not a valid zip archive ({e})") from e
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_entries:
            raise ArchiveError(f"{path}: {len(infos)} entries, more than the limit of {limits.max_entries}")
        if sum(i.file_size for i in infos) > limits.max_total_bytes:
            raise ArchiveError(f"{path}: more than {limits.max_total_bytes} bytes uncompressed")
        for info in infos:
            _check_entry(path, info)
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(prefix="book-", dir=workdir))
        try:
            written = 0
            for info in infos:
                target = dest.joinpath(*PurePosixPath(info.filename).parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                written = _copy_capped(zf, info, target, written, limits, path)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)  # a refused or broken archive leaves nothing behind
            raise
    return dest


def _check_entry(path: Path, info: zipfile.ZipInfo) -> None:
    name = info.filename
    pure = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"{path}: entry {name!r} has an absolute path")
    if ".." in pure.parts:
        raise ArchiveError(f"{path}: entry {name!r} climbs out of the archive with '..'")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"{path}: entry {name!r} is a symbolic link")


def _copy_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, written: int,
                 limits: ArchiveLimits, path: Path) -> int:
    try:
        with zf.open(info) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > limits.max_total_bytes:
                    raise ArchiveError(f"{path}: more than {limits.max_total_bytes} bytes uncompressed "
                                       f"(at entry {info.filename!r})")
                dst.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        # a bad CRC, truncated or corrupt data, or a compression method Python can't read
        raise ArchiveError(f"{path}: entry {info.filename!r} is damaged or unreadable ({e})") from e
    return written


def safe_child(root: Path, relative: str, where: str) -> Path:
    """``root / relative``, refusing names that leave ``root`` (absolute paths, '..', symlinks out)."""
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts:
        raise ArchiveError(f"{where}: file name {relative!r} must stay inside the book folder")
    candidate = root.joinpath(*pure.parts)
    if not candidate.resolve().is_relative_to(root.resolve()):
        raise ArchiveError(f"{where}: file name {relative!r} leads outside the book folder")
    return candidate
