"""Index versions on disk: built in a temporary folder, fsynced, renamed, then made current atomically.

Layout under the index directory::

    CURRENT                 the name of the version being served (replaced atomically)
    versions/<version>/     index.faiss, slots.npz, manifest.json
    tmp/                    builds in progress; anything left here by a killed build is removed at start

A build killed at any moment leaves CURRENT naming a complete, checksummed version.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import faiss

from ..errors import IndexStoreError
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


class IndexStore:
    def __init__(self, root: Path, keep_versions: int = 3) -> None:
        self.root = root
        self.keep_versions = keep_versions
        self.versions_dir = root / "versions"
        self.tmp_dir = root / "tmp"
        self.current_file = root / "CURRENT"

    def prepare(self) -> None:
        """Create the folders and remove what interrupted builds left behind."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        if self.tmp_dir.exists():
            for leftover in self.tmp_dir.iterdir():
                log.info("removing an interrupted index build: %s", leftover.name)
                shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

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
        """Write index as a new version and make it current."""
        self.prepare_dirs()
        created = datetime.now(UTC)
        version = f"{created:%Y%m%dT%H%M%S%f}-r{bank_revision}"
        work = self.tmp_dir / f"{version}.{os.getpid()}"
        work.mkdir(parents=True)
        try:
            files = index.save(work)
            manifest = IndexManifest(
                version=version,
                kind=index.kind,
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
        self._switch_current(version)
        self.prune()
        return manifest

    def prepare_dirs(self) -> None:
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def _switch_current(self, version: str) -> None:
        pointer = self.tmp_dir / f"CURRENT.{os.getpid()}.{time.monotonic_ns()}"
        with pointer.open("w") as handle:
            handle.write(version + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(pointer, self.current_file)
        _fsync_path(self.root)

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
