"""Index versions on disk: built in a temporary folder, fsynced, renamed, then made current atomically.

Layout under the index directory::

    CURRENT                 the name of the version being served (replaced atomically)
    versions/<version>/     index.faiss, slots.npz, manifest.json
    tmp/                    builds in progress, each with a <name>.lock its builder holds (flock)
    publish.lock            held while CURRENT is compared and replaced

A build killed at any moment leaves CURRENT naming a complete, checksummed version. A build that cannot be
written (a full or read-only disk) removes what it wrote, leaves CURRENT as it was and raises
IndexStorageFull.

The directory may be shared by several processes (replicas, a rebuild job): version names carry a random
part so two builds never collide, a build's folder in tmp/ is removed only once no live process holds its
lock, and CURRENT never moves back to a version built at an older bank revision (same model) than the one
it names. flock needs the processes on one host (a local or Docker volume); NFS locks are not relied on.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import faiss

from ..errors import IndexStorageFull, IndexStoreError
from .manifest import IndexManifest, sha256_of
from .vector_index import VectorIndex

log = logging.getLogger(__name__)
MANIFEST_FILE = "manifest.json"


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _storage(what: str) -> Iterator[None]:
    """Turn the disk refusing a write (full, read-only, over a size limit) into IndexStorageFull."""
    try:
        yield
    except IndexStoreError:
        raise
    except (OSError, RuntimeError) as exc:  # faiss reports a failed write as RuntimeError
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise IndexStorageFull(f"{what} failed, the served index version is unchanged: {reason}") from exc


@contextmanager
def _locked(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive flock on path (created if needed) for the block; yields False when wait=False and
    another process holds it. The lock dies with its process, so a killed holder never blocks anyone."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not unlinked by a cleaner between our open and our lock
                yield True
                return
        finally:
            os.close(fd)


class IndexStore:
    def __init__(self, root: Path, keep_versions: int = 3) -> None:
        self.root = root
        self.keep_versions = keep_versions
        self.versions_dir = root / "versions"
        self.tmp_dir = root / "tmp"
        self.current_file = root / "CURRENT"

    def prepare(self) -> None:
        """Create the folders and remove what interrupted builds left behind (never a live build's)."""
        self.prepare_dirs()
        for leftover in sorted(self.tmp_dir.iterdir()):
            if leftover.suffix == ".lock" or not leftover.exists():
                continue
            if leftover.name.startswith("CURRENT."):
                with _locked(self.root / "publish.lock"):
                    leftover.unlink(missing_ok=True)  # a pointer whose writer died before the replace
                continue
            lock = leftover.with_name(leftover.name + ".lock")
            with _locked(lock, wait=False) as free:
                # Looked at again under the lock: the build may have been published (moved out of tmp/) or
                # cleared by another starting process between the listing and the lock.
                if free and leftover.exists():
                    log.info("removing an interrupted index build: %s", leftover.name)
                    if leftover.is_dir():
                        shutil.rmtree(leftover, ignore_errors=True)
                    else:
                        leftover.unlink(missing_ok=True)
                if free:
                    lock.unlink(missing_ok=True)
        for lock in self.tmp_dir.glob("*.lock"):
            if not lock.with_suffix("").exists():
                with _locked(lock, wait=False) as free:
                    if free:
                        lock.unlink(missing_ok=True)

    def current_version(self) -> str | None:
        try:
            name = self.current_file.read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def read_manifest(self, version: str) -> IndexManifest:
        path = self.versions_dir / version / MANIFEST_FILE
        try:
            return IndexManifest.model_validate_json(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise IndexStoreError(f"cannot read the manifest of index version {version}: {exc}") from exc

    def load(self, version: str) -> tuple[VectorIndex, IndexManifest]:
        """Load a version after checking its files against the manifest's checksums."""
        manifest = self.read_manifest(version)
        directory = self.versions_dir / version
        for name, expected in manifest.checksums.items():
            try:
                actual = sha256_of(directory / name)
            except OSError as exc:
                raise IndexStoreError(f"index version {version} lacks {name}: {exc}") from exc
            if actual != expected:
                raise IndexStoreError(f"index version {version}: {name} does not match its checksum")
        index = VectorIndex.load(directory)
        if index.dim != manifest.dim or len(index.slots) != manifest.count:
            raise IndexStoreError(f"index version {version} does not match its manifest")
        return index, manifest

    def save(self, index: VectorIndex, *, model_id: str, bank_revision: int, build_seconds: float) -> IndexManifest:
        """Write index as a new version and publish it (see publish)."""
        created = datetime.now(UTC)
        # Names sort by build time; the random part keeps two processes' builds apart.
        version = f"{created:%Y%m%dT%H%M%S%f}-r{bank_revision}-{secrets.token_hex(3)}"
        with _storage(f"writing index version {version} to {self.root}"):
            self.prepare_dirs()
            lock = self.tmp_dir / f"{version}.lock"
            with _locked(lock):
                try:
                    manifest = self._write(
                        index, self.tmp_dir / version, version, created, model_id, bank_revision, build_seconds
                    )
                finally:
                    lock.unlink(missing_ok=True)
            try:
                self.publish(manifest)
            except BaseException:
                if self.current_version() != version:  # never made current, so nothing can be serving it
                    shutil.rmtree(self.versions_dir / version, ignore_errors=True)
                raise
        self.prune()
        return manifest

    def _write(
        self,
        index: VectorIndex,
        work: Path,
        version: str,
        created: datetime,
        model_id: str,
        bank_revision: int,
        build_seconds: float,
    ) -> IndexManifest:
        work.mkdir(parents=True)
        try:
            files = index.save(work)
            manifest = IndexManifest(
                version=version,
                kind=index.kind,
                storage=index.storage,
                params=index.params(),
                model_id=model_id,
                dim=index.dim,
                count=len(index.slots),
                faiss_version=faiss.__version__,
                bank_revision=bank_revision,
                created_at=created,
                build_seconds=round(build_seconds, 3),
                checksums={f.name: sha256_of(f) for f in files},
            )
            (work / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2))
            for path in [*files, work / MANIFEST_FILE, work]:
                _fsync_path(path)
            target = self.versions_dir / version
            os.rename(work, target)
            _fsync_path(self.versions_dir)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return manifest

    def prepare_dirs(self) -> None:
        """Create the folders; a root that cannot hold them (a file, no permission) is one line naming it."""
        try:
            self.versions_dir.mkdir(parents=True, exist_ok=True)
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexStoreError(
                f"cannot create the index folders in {str(self.root)!r} (FEWSHOT_INDEX_DIR): {exc.strerror or exc}"
            ) from exc

    def publish(self, manifest: IndexManifest) -> bool:
        """Make a saved version current, unless CURRENT names one of the same model built at a later bank
        revision (another process published it meanwhile); whether CURRENT now names it."""
        with _locked(self.root / "publish.lock"):
            current = self.current_version()
            if current is not None and current != manifest.version:
                try:
                    other = self.read_manifest(current)
                except IndexStoreError:
                    other = None  # a damaged or pruned version is no reason to keep CURRENT on it
                if (
                    other is not None
                    and (other.model_id, other.dim) == (manifest.model_id, manifest.dim)
                    and other.bank_revision > manifest.bank_revision
                ):
                    log.info(
                        "index version %s stays current: it is at bank revision %d, %s at %d",
                        current,
                        other.bank_revision,
                        manifest.version,
                        manifest.bank_revision,
                    )
                    return False
            pointer = self.tmp_dir / f"CURRENT.{os.getpid()}.{time.monotonic_ns()}"
            try:
                with pointer.open("w") as handle:
                    handle.write(manifest.version + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(pointer, self.current_file)
            finally:
                pointer.unlink(missing_ok=True)  # a half-written pointer must never be left to replace CURRENT
            _fsync_path(self.root)
        return True

    def versions(self) -> list[str]:
        """Complete versions on disk, oldest first (names sort by build time)."""
        if not self.versions_dir.exists():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir() if (p / MANIFEST_FILE).exists())

    def prune(self) -> None:
        """Keep the newest keep_versions versions, and always the current one."""
        current = self.current_version()
        for old in self.versions()[: -self.keep_versions]:
            if old != current:
                shutil.rmtree(self.versions_dir / old, ignore_errors=True)
