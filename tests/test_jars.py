"""feast_spark.jars: the pinned jars, resolved once per machine, safely, from a real HTTP server.

The repository is a local HTTP server on 127.0.0.1 serving fake jars; it counts requests and
can answer short, corrupt or missing files. Concurrency is tested with real processes.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from feast_spark.errors import ConfigError, JarDownloadError
from feast_spark.jars import (
    COMPLETE_MARKER,
    LOCK_FILE,
    JarLock,
    cache_root,
    jar_folder,
    lock_from_maven_list,
    resolve,
)

ROOT = Path(__file__).resolve().parents[1]
POM = ROOT / "conf" / "jars" / "pom.xml"
MAVEN = "{http://maven.apache.org/POM/4.0.0}"


def fake_jar(name: str, size: int) -> bytes:
    return (name.encode() * (size // len(name) + 1))[:size]


CONTENT = {
    "/maven2/org/example/alpha/1.0/alpha-1.0.jar": fake_jar("alpha", 300_000),
    "/maven2/org/example/beta/2.1/beta-2.1.jar": fake_jar("beta", 120_000),
    "/maven2/com/other/gamma_2.13/0.3/gamma_2.13-0.3.jar": fake_jar("gamma", 5_000),
}


def lock_text() -> str:
    lines = ["# a test lock"]
    for path, body in CONTENT.items():
        group_path, artifact, version, _ = path.removeprefix("/maven2/").rsplit("/", 3)
        coordinate = f"{group_path.replace('/', '.')}:{artifact}:{version}"
        lines.append(f"{coordinate} {len(body)} {hashlib.sha256(body).hexdigest()}")
    return "\n".join(lines) + "\n"


LOCK = JarLock.parse(lock_text(), "test.lock")


@dataclass
class Repository:
    """A Maven repository on loopback; ``faults[path]`` lists how the next answers misbehave."""

    url: str
    requests: Counter[str] = field(default_factory=Counter)
    faults: dict[str, list[str]] = field(default_factory=dict)
    delay_s: float = 0.0


@pytest.fixture
def repo() -> Iterator[Repository]:
    state = Repository("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests[self.path] += 1
            body = CONTENT.get(self.path)
            fault = state.faults.get(self.path, [])
            kind = fault.pop(0) if fault else "ok"
            if body is None or kind == "missing":
                self.send_error(404)
                return
            time.sleep(state.delay_s)
            if kind == "corrupt":
                body = bytes(reversed(body))
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # "short": the connection drops after half the announced bytes
            self.wfile.write(body[: len(body) // 2] if kind == "short" else body)
            if kind == "short":
                self.close_connection = True

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/maven2"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def expected_names() -> list[str]:
    return sorted([COMPLETE_MARKER, *(jar.file_name for jar in LOCK.jars)])


# --- one process ---------------------------------------------------------------------------------


def test_first_call_downloads_every_jar_once_and_verifies_it(
    repo: Repository, tmp_path: Path
) -> None:
    # given an empty cache
    # when the lock is resolved
    lines: list[str] = []
    paths = resolve(LOCK, tmp_path, repo.url, report=lines.append)

    # then each jar was fetched once, is byte for byte the served one, and nothing else is left
    assert repo.requests == Counter(list(CONTENT))
    assert [p.name for p in paths] == [jar.file_name for jar in LOCK.jars]
    for path in paths:
        served = next(body for url, body in CONTENT.items() if url.endswith("/" + path.name))
        assert path.read_bytes() == served
    assert listing(jar_folder(LOCK, tmp_path)) == expected_names()
    assert len(lines) == 1 and "downloading 3 jars" in lines[0]


def test_a_complete_cache_answers_without_the_network(repo: Repository, tmp_path: Path) -> None:
    # given a resolved cache
    first = resolve(LOCK, tmp_path, repo.url)

    # when it is resolved again with an unreachable repository
    started = time.perf_counter()
    again = resolve(LOCK, tmp_path, "http://127.0.0.1:9/nowhere", report=pytest.fail)
    elapsed = time.perf_counter() - started

    # then the same files come back at once, with no request
    assert again == first
    assert sum(repo.requests.values()) == len(CONTENT)
    assert elapsed < 0.5


def test_a_short_download_is_retried(repo: Repository, tmp_path: Path) -> None:
    # given a server that drops the connection half-way through alpha's first answer
    alpha = next(url for url in CONTENT if "alpha" in url)
    repo.faults[alpha] = ["short"]

    # when the lock is resolved
    paths = resolve(LOCK, tmp_path, repo.url, backoff_s=0.01, report=lambda _: None)

    # then alpha was asked twice and the complete file is in place
    assert repo.requests[alpha] == 2
    assert paths[0].read_bytes() == CONTENT[alpha]
    assert listing(jar_folder(LOCK, tmp_path)) == expected_names()


def test_a_checksum_mismatch_is_one_clear_error_and_leaves_no_jar(
    repo: Repository, tmp_path: Path
) -> None:
    # given a mirror that always serves other bytes (of the right size) for beta
    beta = next(url for url in CONTENT if "beta" in url)
    repo.faults[beta] = ["corrupt"] * 3

    # when the lock is resolved
    with pytest.raises(JarDownloadError) as caught:
        resolve(LOCK, tmp_path, repo.url, backoff_s=0.01, report=lambda _: None)

    # then the error names the jar, the URL, the cause and the fix, on one line
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cannot fetch org.example:beta:2.1 from {repo.url}{beta[7:]}: ")
    assert "sha256" in message and "after 3 tries" in message
    assert "FEAST_SPARK_JARS_DIR" in message and "FEAST_SPARK_MAVEN_REPO" in message
    assert caught.value.jar == "org.example:beta:2.1"
    # and no partial or unverified beta, nor the completion marker, is in the folder
    names = listing(jar_folder(LOCK, tmp_path))
    assert "beta-2.1.jar" not in names and COMPLETE_MARKER not in names
    assert not [n for n in names if n.endswith(".part")]

    # and once the mirror is fixed, the next call completes the set
    repo.faults.clear()
    resolve(LOCK, tmp_path, repo.url, report=lambda _: None)
    assert listing(jar_folder(LOCK, tmp_path)) == expected_names()


def test_a_missing_jar_is_not_retried(repo: Repository, tmp_path: Path) -> None:
    gamma = next(url for url in CONTENT if "gamma" in url)
    repo.faults[gamma] = ["missing"] * 5
    with pytest.raises(JarDownloadError, match=r"com.other:gamma_2.13:0.3 .*HTTP 404"):
        resolve(LOCK, tmp_path, repo.url, backoff_s=0.01, report=lambda _: None)
    assert repo.requests[gamma] == 1


def test_no_network_is_one_clear_error(tmp_path: Path) -> None:
    # given a repository nobody listens on
    with pytest.raises(JarDownloadError) as caught:
        resolve(LOCK, tmp_path, "http://127.0.0.1:9/maven2", attempts=2, backoff_s=0.01,
                report=lambda _: None)  # fmt: skip
    message = str(caught.value)
    assert "http://127.0.0.1:9/maven2/org/example/alpha/1.0/alpha-1.0.jar" in message
    assert "refused" in message.lower() and "after 2 tries" in message


def test_a_read_only_cache_is_one_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(JarDownloadError, match="FEAST_SPARK_CACHE_DIR"):
            resolve(LOCK, tmp_path / "cache", "http://127.0.0.1:9/x")
    finally:
        tmp_path.chmod(0o700)


def test_a_file_repository_works(tmp_path: Path) -> None:
    # given a local Maven repository laid out as ~/.m2/repository is
    local = tmp_path / "m2"
    for url, body in CONTENT.items():
        path = local / url.removeprefix("/maven2/")
        path.parent.mkdir(parents=True)
        path.write_bytes(body)

    # when it is the repository
    paths = resolve(LOCK, tmp_path / "cache", local.as_uri(), report=lambda _: None)

    # then the jars are copied from it
    assert all(p.is_file() for p in paths)


# --- many processes ------------------------------------------------------------------------------

RESOLVE_IN_A_PROCESS = """
import json, sys
from pathlib import Path
from feast_spark.jars import JarLock, resolve
lock = JarLock.parse(Path(sys.argv[1]).read_text())
paths = resolve(lock, Path(sys.argv[2]), sys.argv[3], report=lambda line: print(line, file=sys.stderr))
print(json.dumps([str(p) for p in paths]))
"""


def test_twenty_processes_at_once_all_succeed_and_each_jar_is_downloaded_once(
    repo: Repository, tmp_path: Path
) -> None:
    # given an empty cache, a slow repository (so the processes overlap) and 20 processes
    repo.delay_s = 0.3
    lock_path = tmp_path / "test.lock"
    lock_path.write_text(lock_text())
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    # when they all resolve the same lock at once
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RESOLVE_IN_A_PROCESS, str(lock_path), str(cache), repo.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(20)
    ]
    results = [(p.wait(120), *p.communicate()) for p in processes]

    # then every one succeeds with the same paths, and each jar was downloaded exactly once
    assert [code for code, _, _ in results] == [0] * 20, [err for _, _, err in results]
    assert len({out for _, out, _ in results}) == 1
    assert repo.requests == Counter(list(CONTENT))
    assert sum("downloading" in err for _, _, err in results) == 1
    for path in json.loads(results[0][1]):
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() in lock_text()
    assert listing(jar_folder(LOCK, cache)) == expected_names()


def test_a_process_killed_while_downloading_does_not_block_the_next(
    repo: Repository, tmp_path: Path
) -> None:
    # given a process that holds the lock and is killed in the middle of its downloads
    repo.delay_s = 5.0
    lock_path = tmp_path / "test.lock"
    lock_path.write_text(lock_text())
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    victim = subprocess.Popen(
        [sys.executable, "-c", RESOLVE_IN_A_PROCESS, str(lock_path), str(cache), repo.url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not repo.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.kill()
    victim.wait()

    # when another resolves (the kernel released the dead process's lock)
    repo.delay_s = 0.0
    paths = resolve(LOCK, cache, repo.url, lock_timeout_s=10, report=lambda _: None)

    # then it completes the set, and no partial jar is ever in a jar's place
    assert all(p.is_file() for p in paths)
    for jar, path in zip(LOCK.jars, paths, strict=True):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == jar.sha256


# --- the lock ------------------------------------------------------------------------------------


def test_lock_lines_are_checked() -> None:
    with pytest.raises(ConfigError, match="line 2") as caught:
        JarLock.parse("# x\norg.example:alpha 10 abc\n", "bad.lock")
    assert caught.value.source == "bad.lock"
    with pytest.raises(ConfigError, match="listed twice"):
        JarLock.parse(lock_text() + lock_text().splitlines()[1] + "\n")


def test_the_digest_names_the_exact_set() -> None:
    changed = lock_text().replace(" 5000 ", " 5001 ")
    assert JarLock.parse(changed).digest != LOCK.digest
    assert JarLock.parse("# other comment\n" + lock_text()).digest == LOCK.digest


def test_the_shipped_lock_is_the_pom_delta_release() -> None:
    # given the lock shipped with the package and the pom it was generated from
    lock = JarLock.read(LOCK_FILE)
    pom = ET.parse(POM).getroot()
    version = pom.findtext(f"{MAVEN}properties/{MAVEN}delta.version")
    scala = pom.findtext(f"{MAVEN}properties/{MAVEN}scala.binary.version")

    # then it pins that Delta release, with its storage jar
    coordinates = {jar.coordinate for jar in lock.jars}
    assert f"io.delta:delta-spark_{scala}:{version}" in coordinates
    assert f"io.delta:delta-storage:{version}" in coordinates


def test_the_shipped_lock_has_the_kafka_connector_of_the_installed_spark() -> None:
    # given the lock, the pom and the installed pyspark
    from importlib.metadata import version as installed

    lock = JarLock.read(LOCK_FILE)
    pom = ET.parse(POM).getroot()
    spark = pom.findtext(f"{MAVEN}properties/{MAVEN}spark.version")

    # then the pom's Spark is pyspark's, and the lock pins its Kafka connector and token provider
    assert spark == installed("pyspark")
    coordinates = {jar.coordinate for jar in lock.jars}
    assert f"org.apache.spark:spark-sql-kafka-0-10_2.13:{spark}" in coordinates
    assert f"org.apache.spark:spark-token-provider-kafka-0-10_2.13:{spark}" in coordinates
    assert any(c.startswith("org.apache.kafka:kafka-clients:") for c in coordinates)
    assert any(c.startswith("org.apache.commons:commons-pool2:") for c in coordinates)


def test_a_lock_is_made_from_maven_s_listing(tmp_path: Path) -> None:
    # given `mvn dependency:list -DoutputAbsoluteArtifactFilename=true` output
    jar = tmp_path / "alpha-1.0.jar"
    jar.write_bytes(CONTENT["/maven2/org/example/alpha/1.0/alpha-1.0.jar"])
    text = (
        "\nThe following files have been resolved:\n"
        f"   org.example:alpha:jar:1.0:compile:{jar} -- module alpha (auto)\n"
    )

    # when a lock is made from it
    made = JarLock.parse(lock_from_maven_list(text))

    # then it pins that jar
    assert made.jars == tuple(j for j in LOCK.jars if j.artifact == "alpha")


def test_cache_root_follows_the_environment(tmp_path: Path) -> None:
    assert cache_root({"FEAST_SPARK_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert cache_root({"XDG_CACHE_HOME": "/xdg"}) == Path("/xdg/feast-spark")
    assert cache_root({}) == Path.home() / ".cache" / "feast-spark"


def test_the_command_pre_seeds_a_folder(repo: Repository, tmp_path: Path) -> None:
    # given the shipped lock served by a mirror that has none of its jars
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FEAST_SPARK_CACHE_DIR": str(tmp_path / "cache"),
        "FEAST_SPARK_MAVEN_REPO": repo.url,
    }
    failed = subprocess.run(
        [sys.executable, "-m", "feast_spark.jars", "--dest", str(tmp_path / "seed")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip

    # then the command fails with one line that names the jar and the fix
    assert failed.returncode == 1
    assert failed.stderr.count("\n") == 2  # the "downloading" line and the error
    assert "HTTP 404" in failed.stderr and "FEAST_SPARK_JARS_DIR" in failed.stderr
