"""What every benchmark needs: the tools, nginx as the reference, an openpan server, wrk, a
byte-exact PUT client, and a memory sampler. Everything listens on 127.0.0.1 only and every
step has a deadline."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

HOST = "127.0.0.1"
MiB = 1024 * 1024


def machine() -> str:
    """One line about the machine the figures come from."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    cores = os.cpu_count() or 1
    return (
        f"{cores} CPU core{'s' if cores != 1 else ''} ({model or 'unknown CPU'}), "
        f"{memory:.0f} GiB RAM, Python {sys.version.split()[0]}; load generator, nginx and "
        f"openpan share these {cores} cores"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def ensure_tools() -> None:
    """nginx (with the WebDAV PUT module) and wrk from the distribution, installed if missing."""
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit(f"missing {', '.join(missing)}: install them (apt-get install nginx wrk)")
    print(f"installing {' '.join(missing)} from the distribution ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "nginx", "wrk"], check=True, env=env, timeout=900
    )


def wait_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer in {seconds} s") from None
            time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (nginx workers, server worker processes)."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                found.extend(int(c) for c in children)
    return found


def rss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by ``pid`` and its descendants, all threads."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


class PeakMemory:
    """Samples the resident memory of a process tree every 20 ms while the block runs.

    ``peak`` is the highest total over the tree, ``peak_single`` the highest single process.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.peak_single = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sizes = [rss_bytes(p) for p in process_tree(self.pid)]
            self.peak = max(self.peak, sum(sizes))
            self.peak_single = max(self.peak_single, max(sizes, default=0))
            self._stop.wait(0.02)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# nginx -------------------------------------------------------------------------------------

NGINX_CONF = """
worker_processes auto;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{ image/jpeg jpg; application/octet-stream bin; }}
    client_body_temp_path {root}/dav/.tmp;
    proxy_temp_path {root}/tmp-proxy;
    fastcgi_temp_path {root}/tmp-fastcgi;
    uwsgi_temp_path {root}/tmp-uwsgi;
    scgi_temp_path {root}/tmp-scgi;
    server {{
        listen {host}:{port};
        root {root}/www;
        location /dav/ {{
            root {root};
            dav_methods PUT DELETE;
            create_full_put_path on;
            client_max_body_size 0;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    """nginx from the distribution: static files under ``www`` and WebDAV PUT under ``/dav/``,
    with the distribution's own defaults for serving (sendfile on, one worker per core)."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        (self.root / "www").mkdir(parents=True, exist_ok=True)
        (self.root / "dav" / ".tmp").mkdir(parents=True, exist_ok=True)
        user = ""
        if os.geteuid() == 0:
            # The workers run as nobody: let them read the files and write the uploads.
            user = "user nobody nogroup;"
            for path in (self.root, self.root / "www"):
                path.chmod(0o755)
            for path in (self.root / "dav", self.root / "dav" / ".tmp"):
                os.chown(path, _uid("nobody"), -1)
        conf = self.root / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=self.root, host=HOST, port=self.port, user=user))
        self.process = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(self.root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_http(self.url + "/")

    def publish(self, name: str, source: Path) -> str:
        target = self.root / "www" / name
        shutil.copyfile(source, target)
        target.chmod(0o644)
        return f"{self.url}/{name}"

    def clear_dav(self) -> None:
        for entry in (self.root / "dav").iterdir():
            if entry.is_file():
                entry.unlink()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGQUIT)
            self.process = None


def _uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


# openpan -----------------------------------------------------------------------------------


@dataclass
class Openpan:
    """An ``openpan serve`` process with its own data directory and one user."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "openpan"])
    process: subprocess.Popen[bytes] | None = None
    http: httpx.Client | None = None
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "OPENPAN_RATE_LIMIT": "false",
            "OPENPAN_HOST": HOST,
            **self.env,
        }

    def start(self) -> None:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the child keeps it open
        serve = ["serve", "--data-dir", str(data), "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*self.command, *serve, "--log-level", "warning", *self.args],
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_http(self.url + "/healthz")
        add = ["user", "add", "bench", "--json", "--data-dir", str(data)]
        done = subprocess.run(
            [sys.executable, "-m", "openpan", *add],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        creds = json.loads(done.stdout.strip().splitlines()[-1])
        self.http = httpx.Client(base_url=self.url, timeout=120)
        answer = self.http.post(
            "/api/v1/access_token",
            json={"clientID": creds["client_id"], "clientSecret": creds["client_secret"]},
            headers={"Platform": "open_platform"},
        ).json()
        self.token = answer["data"]["accessToken"]

    def call(self, path: str, body: dict[str, Any]) -> Any:
        assert self.http is not None
        answer = self.http.post(
            path,
            json=body,
            headers={"Authorization": f"Bearer {self.token}", "Platform": "open_platform"},
        ).json()
        if answer["code"] != 0:
            raise RuntimeError(f"{path}: {answer}")
        return answer["data"]

    def upload(
        self, path: Path, name: str, parallel: int = 4, space: str = "oss"
    ) -> tuple[str, float]:
        """Upload a file through the whole API flow of the image bed (``oss``) or the cloud
        disk (``disk``, V1): create, get_upload_url and PUT for every slice (``parallel`` at a
        time), complete, then upload_async_result until done. Returns (fileID, seconds); the
        md5 is the client's own business, before."""
        base = "/upload/v1/oss/file" if space == "oss" else "/upload/v1/file"
        size = path.stat().st_size
        etag = md5_file(path)
        started = time.perf_counter()
        body: dict[str, Any] = {"filename": name, "etag": etag, "size": size}
        body.update({"parentFileID": "", "type": 1} if space == "oss" else {"parentFileID": 0})
        created = self.call(f"{base}/create", body)
        if created["reuse"]:
            raise RuntimeError("the server already has these bytes (instant upload)")
        pre, slice_size = created["preuploadID"], created["sliceSize"]
        count = max(1, -(-size // slice_size))

        def send(number: int) -> None:
            url = self.call(f"{base}/get_upload_url", {"preuploadID": pre, "sliceNo": number})[
                "presignedURL"
            ]
            offset = (number - 1) * slice_size
            status = put_file(url, path, offset, min(slice_size, size - offset))
            if status != 200:
                raise RuntimeError(f"slice {number}: HTTP {status}")

        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(send, range(1, count + 1)))
        done = self.call(f"{base}/upload_complete", {"preuploadID": pre})
        while not done["completed"]:
            time.sleep(0.05)  # a real client waits a second; this measures the server
            done = self.call(f"{base}/upload_async_result", {"preuploadID": pre})
        return str(done["fileID"]), time.perf_counter() - started

    def link(self, file_id: str) -> str:
        detail = self.call_get("/api/v1/oss/file/detail", {"fileID": file_id})
        return str(detail["downloadURL"])

    def call_get(self, path: str, params: dict[str, Any]) -> Any:
        assert self.http is not None
        answer = self.http.get(
            path,
            params=params,
            headers={"Authorization": f"Bearer {self.token}", "Platform": "open_platform"},
        ).json()
        if answer["code"] != 0:
            raise RuntimeError(f"{path}: {answer}")
        return answer["data"]

    def delete(self, file_id: str, space: str = "oss") -> None:
        """Delete a file for good (its bytes go with its last reference)."""
        if space == "oss":
            self.call("/api/v1/oss/file/delete", {"fileIDs": [file_id]})
        else:
            self.call("/api/v1/file/trash", {"fileIDs": [int(file_id)]})
            self.call("/api/v1/file/delete", {"fileIDs": [int(file_id)]})

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None
        if self.process is not None:
            stop_process(self.process)
            self.process = None


# Load and bytes ----------------------------------------------------------------------------


def md5_file(path: Path) -> str:
    hasher = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(8 * MiB):
            hasher.update(chunk)
    return hasher.hexdigest()


def random_file(path: Path, size: int, head: bytes = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00") -> Path:
    with open(path, "wb") as handle:
        handle.write(head)
        remaining = size - len(head)
        while remaining > 0:
            block = os.urandom(min(remaining, 8 * MiB))
            handle.write(block)
            remaining -= len(block)
    return path


def put_file(url: str, path: Path, offset: int, length: int, timeout: float = 600) -> int:
    """PUT ``length`` bytes of ``path`` from ``offset`` with sendfile (the same client for
    openpan's slices and nginx's WebDAV); returns the HTTP status."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        head = (
            f"PUT {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {length}\r\n"
            "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode())
        with open(path, "rb") as handle:
            sock.sendfile(handle, offset, length)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return int(match.group(1)) if match else 0


@dataclass
class WrkResult:
    requests_per_second: float
    bytes_per_second: float
    errors: int


_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def wrk(url: str, connections: int, seconds: int, threads: int = 2) -> WrkResult:
    """Load ``url`` with wrk for ``seconds`` (bounded: wrk is killed 30 s after that)."""
    done = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out).groups()  # type: ignore[union-attr]
    errors = 0
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(found.group(1))
    if found := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(n) for n in found.groups())
    return WrkResult(rps, float(value) * _UNITS[unit], errors)


def alternate(rounds: int, runs: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run each measurement ``rounds`` times, interleaved, so that whatever else the machine is
    doing affects both sides alike; the order turns round every round (A B B A A B ...): of two
    runs of the same offline-download code one after the other, the second was some 6 % slower
    (``offline_ab.py`` with the two checkouts either way round)."""
    results: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs.items())
    for number in range(rounds):
        for name, run in order if number % 2 == 0 else order[::-1]:
            results[name].append(run())
    return results


def median(values: list[float]) -> float:
    return statistics.median(values)


HEADER = ["measurement", "nginx", "openpan", "ratio", "target", "met"]


def table(rows: list[list[str]], header: list[str]) -> str:
    """A Markdown table."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = (str(c).ljust(w) for c, w in zip(cells, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    out = [line(header), "| " + " | ".join("-" * w for w in widths) + " |"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def mib(value: float) -> str:
    return f"{value / MiB:.1f} MiB"


@contextlib.contextmanager
def workdir(keep: bool = False) -> Iterator[Path]:
    """A scratch directory for one benchmark run (on the data disk, not tmpfs)."""
    base = Path(os.environ.get("BENCH_DIR", tempfile.gettempdir()))
    root = Path(tempfile.mkdtemp(prefix="openpan-bench-", dir=base))
    root.chmod(0o755)  # nginx's workers (nobody) read below it
    try:
        yield root
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def deadline(seconds: int) -> None:
    """End the whole benchmark if it runs longer than ``seconds`` (children are stopped by
    the ``finally`` blocks that started them)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"benchmark exceeded its {seconds} s budget")

    signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
