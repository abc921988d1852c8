"""A Redis new enough for ``WAITAOF`` (>= 7.2), built once from a pinned source and cached.

Debian 12's redis-server is 7.0, which has no ``WAITAOF``: there agentq's durable writes rest
on ``appendfsync always``. To test (and benchmark) the other branch, the fault tests need a
7.2+ server, and no package this machine can install has one. Debian's own source archive has
Redis 8.0.2's upstream tarball; it builds in about 40 s on 2 cores with the libc allocator and
no TLS (only ``redis-server``, which also runs as a sentinel). The tarball's SHA-256 is pinned,
so a changed download fails rather than builds.

The binary is kept under ``~/.cache/agentq/redis-<version>/`` (``AGENTQ_CACHE_DIR`` moves the
cache); a file lock lets concurrent callers (a test session and a benchmark) build it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

VERSION = "8.0.2"
SOURCE_URL = f"http://deb.debian.org/debian/pool/main/r/redis/redis_{VERSION}.orig.tar.gz"
SOURCE_SHA256 = "caf3c0069f06fc84c5153bd2a348b204c578de80490c73857bee01d9b5d7401f"
BUILD_SECONDS = 600


class RedisBuildUnavailable(Exception):
    """The source cannot be fetched or no compiler is here: a reason to skip, not a bug."""


def cache_dir() -> Path:
    root = os.environ.get("AGENTQ_CACHE_DIR") or str(Path.home() / ".cache" / "agentq")
    return Path(root) / f"redis-{VERSION}"


def cached_binary() -> Path | None:
    """The built ``redis-server`` if it is already cached."""
    binary = cache_dir() / "redis-server"
    return binary if binary.exists() else None


def redis_server_with_waitaof() -> Path:
    """The path of a Redis >= 7.2 ``redis-server``, building it first if it is not cached."""
    found = cached_binary()
    if found is not None:
        return found
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / ".lock"):
        found = cached_binary()  # built by another caller while we waited
        if found is not None:
            return found
        if shutil.which("make") is None or shutil.which("cc") is None:
            raise RedisBuildUnavailable("no make or C compiler to build Redis with")
        log = folder / "build.log"
        with tempfile.TemporaryDirectory(prefix="agentq-redis-build-") as scratch:
            source = _download(Path(scratch))
            with tarfile.open(source) as archive:
                archive.extractall(scratch, filter="data")
            tree = Path(scratch) / f"redis-{VERSION}"
            with log.open("wb") as out:
                done = subprocess.run(
                    ["make", f"-j{os.cpu_count() or 2}", "-C", "src", "redis-server",
                     "MALLOC=libc", "BUILD_TLS=no"],
                    cwd=tree, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_SECONDS,
                    check=False,
                )  # fmt: skip
            if done.returncode != 0:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"building Redis {VERSION} failed (log {log}):\n{tail}")
            staged = folder / "redis-server.part"
            shutil.copy2(tree / "src" / "redis-server", staged)
            staged.replace(folder / "redis-server")
    return folder / "redis-server"


def _download(into: Path) -> Path:
    target = into / f"redis_{VERSION}.orig.tar.gz"
    try:
        with urllib.request.urlopen(SOURCE_URL, timeout=60) as response:
            target.write_bytes(response.read())
    except OSError as exc:
        raise RedisBuildUnavailable(f"cannot fetch {SOURCE_URL}: {exc}") from None
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        raise RuntimeError(f"{SOURCE_URL} has SHA-256 {digest}, not the pinned {SOURCE_SHA256}")
    return target


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
