"""What the benchmarks share: one percentile, the machine description, a server launcher and its readiness
wait, and recording results in RESULTS.md. Scripts import it by name (benchmarks/ is on their path)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "onnxruntime", "faiss-cpu", "sentence-transformers", "uvicorn", "httpx")


# -- statistics ---------------------------------------------------------------------------------------
def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The q-th percentile (q from 0 to 100) by linear interpolation between the closest ranks (numpy's
    default, Hyndman and Fan's type 7: p50 of 1..4 is 2.5); NaN for no values (and NaNs are ignored)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0 or np.isnan(array).all():
        return float("nan")
    return float(np.nanpercentile(array, q))


# -- the machine --------------------------------------------------------------------------------------
def run_command(*args: str) -> str:
    """A command's output, or "" when it is missing or fails (a description must never stop a benchmark)."""
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, for saying how shared the machine was."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, every thread) a process has used so far, from /proc."""
    # Fields after the command name, which is in parentheses and may hold spaces: utime and stime are 12 and 13.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_info(extra_packages: Sequence[str] = ()) -> str:
    """Cores, CPU, memory, kernel, Python, library versions and the fewshot-service source that ran."""
    cpu = next(
        (line.split(":", 1)[1].strip() for line in run_command("lscpu").splitlines() if line.startswith("Model name:")),
        platform.processor() or "unknown CPU",
    )
    try:
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem_kb = 0
    cores = run_command("nproc") or str(os.cpu_count())
    packages = ", ".join(f"{name} {version_of(name)}" for name in (*PACKAGES, *extra_packages))
    return (
        f"{cores} cores, {cpu}, {mem_kb / 1024**2:.0f} GiB RAM, Linux {platform.release()}; "
        f"Python {platform.python_version()}; {packages}; fewshot-service {version_of('fewshot-service')} "
        f"{_source()}"
    )


def _source() -> str:
    import fewshot_service

    source = Path(fewshot_service.__file__).resolve().parents[1]
    if source != REPO / "src":
        return f"imported from {source}"
    commit = run_command("git", "-C", str(REPO), "rev-parse", "--short", "HEAD") or "no commit"
    changed = run_command("git", "-C", str(REPO), "status", "--porcelain", "--", "src")
    return f"at {commit}{' + uncommitted changes in src/' if changed else ''}"


# -- a server -----------------------------------------------------------------------------------------
def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SystemExit(f"port {port} on 127.0.0.1 is in use; pass another --port") from exc


@contextmanager
def launched(command: Sequence[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server process with its output appended to log_path; terminated (killed if it lingers) on exit."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(list(command), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(
    url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 300.0, poll: float = 0.05
) -> dict[str, Any]:
    """Poll url/readyz until it answers 200 (its JSON returned); fail with the log's tail if the server exits."""
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the server exited with {process.returncode}:\n{tail}")
            try:
                response = client.get("/readyz")
                if response.status_code == 200:
                    return dict(response.json())
            except httpx.TransportError:
                pass
            time.sleep(poll)
    raise RuntimeError(f"the server was not ready after {timeout:.0f}s; see {log_path}")


# -- results ------------------------------------------------------------------------------------------
def record_section(text: str, section: str, path: Path) -> None:
    """Append a run at the end of its section of RESULTS.md (created if missing); other sections untouched."""
    content = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    if section not in content:
        content = content.rstrip("\n") + f"\n\n{section}\n"
    start = content.index(section) + len(section)
    following = content.find("\n## ", start)
    end = len(content) if following < 0 else following
    rest = content[end:].lstrip("\n")
    path.write_text(content[:end].rstrip("\n") + "\n\n" + text.strip() + "\n" + ("\n" + rest if rest else ""), "utf-8")
