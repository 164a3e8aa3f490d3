"""`fewshot serve` as the Docker image runs it: an unprivileged user whose home it cannot write, so the default
ONNX cache (~/.cache/fewshot-service) cannot be made. The server must still become ready, on PyTorch, and say
why in one warning line.

Runs as root only (it creates the user and switches to it). The interpreter may live under a home only root
may enter (pyenv in /root): then the server runs in a private mount namespace in which that home is a
world-searchable tmpfs holding the interpreter's installation alone; nothing outside the namespace changes.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..keyed import tiny_seed_dir
from ..servers import free_port, wait_until_answers

USER = "fewshot-unprivileged"
UID = 10001  # the image's uid; another free one is taken if the machine already uses it
FALLBACK = "not using ONNX Runtime, embedding with PyTorch"

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs root: the test creates an unprivileged system user and runs the server as that user",
)


def unprivileged_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pass
    taken = {entry.pw_uid for entry in pwd.getpwall()}
    uid = UID if UID not in taken else next(u for u in range(UID + 1, UID + 1000) if u not in taken)
    # As the image: a system user with no home of its own (the home named is root's to write).
    subprocess.run(
        ["useradd", "--system", "--uid", str(uid), "--no-create-home", "--home-dir", "/nonexistent", USER],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(USER)


def hidden_ancestor(path: Path) -> Path | None:
    """The first directory above path that others may not enter (/root for a pyenv interpreter), if any."""
    for parent in reversed(path.parents):
        if not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


def command_as(user: pwd.struct_passwd, argv: list[str], scratch: Path) -> list[str]:
    """argv run as user; in a private mount namespace when the interpreter is out of the user's reach."""
    switch = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"]
    prefix = Path(os.path.realpath(sys.base_prefix))
    hidden = hidden_ancestor(prefix)
    if hidden is None:
        return [*switch, *argv]
    staging = scratch / "interpreter"
    staging.mkdir()
    script = (
        f'mount --bind "{prefix}" "{staging}" && mount -t tmpfs -o mode=755 tmpfs "{hidden}" '
        f'&& mkdir -p "{prefix}" && mount --bind "{staging}" "{prefix}" && exec "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *switch, *argv]


@pytest.fixture
def scratch() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are root's alone (mode 700), and the user must reach its data dir.
    root = Path(tempfile.mkdtemp(prefix="fewshot-unprivileged-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_serve_becomes_ready_as_a_user_who_cannot_write_its_home(scratch: Path) -> None:
    user = unprivileged_user()
    home = scratch / "home"  # root-owned, as /app is in the image
    home.mkdir(mode=0o755)
    data, indexes = scratch / "data", scratch / "indexes"
    for folder in (data, indexes):
        folder.mkdir()
        os.chown(folder, user.pw_uid, user.pw_gid)
    seed = tiny_seed_dir(scratch / "seed")
    for path in [seed, *seed.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "FEWSHOT_DATA_DIR": str(data),
        "FEWSHOT_INDEX_DIR": str(indexes),
        "FEWSHOT_SEED_DIR": str(seed),
        "FEWSHOT_LOG_FORMAT": "text",
    }
    fewshot = str(Path(sys.executable).with_name("fewshot"))
    log = scratch / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command_as(user, [fewshot, "serve", "--port", str(port)], scratch),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(home),
        )
    try:
        wait_until_answers(f"http://127.0.0.1:{port}", process, log, timeout=240)
        selected = httpx.post(f"http://127.0.0.1:{port}/v1/select", json={"prompt": "How many apples?", "k": 2})
        assert selected.status_code == 200 and len(selected.json()["examples"]) == 2
    finally:
        process.terminate()
        process.wait(30)
    text = log.read_text()
    fallback = [line for line in text.splitlines() if FALLBACK in line]
    assert len(fallback) == 1, text[-4000:]
    assert "WARNING" in fallback[0] and "FEWSHOT_MODEL_CACHE_DIR" in fallback[0]
    assert "Traceback" not in text
    assert not any(home.iterdir())  # nothing was written where the user may not write
