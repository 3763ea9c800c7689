"""The test run stops what it starts: the Cassandra node it launched, and every other process.

The decision whether to stop the node is pure logic, tested with a stand-in for
``local-cassandra.sh`` (the real node on 9042 is shared and must not be stopped here). The
leftover-process check runs for real, in an inner pytest run with this conftest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import (
    RUN_ID_VARIABLE,
    CassandraNode,
    is_alive,
    launched_the_node,
    local_node,
    processes_of_run,
)

HERE = Path(__file__).resolve().parent
NODE = CassandraNode(host="127.0.0.1", port=9042, local_dc="datacenter1", home=Path("/x"))


class FakeScript:
    """Stands in for ``local-cassandra.sh``: records the commands, answers with canned output."""

    def __init__(self, outputs: dict[str, tuple[int, str]]) -> None:
        self.outputs = outputs
        self.calls: list[str] = []

    def __call__(self, command: str) -> subprocess.CompletedProcess[str]:
        self.calls.append(command)
        code, out = self.outputs.get(command, (0, ""))
        return subprocess.CompletedProcess([command], code, out, "")


STARTED = (
    "local-cassandra: started Cassandra (pid 42), logs in /x/logs; waiting up to 180 s for CQL\n"
)
ALREADY = "local-cassandra: already running (pid 42)\n"


def test_a_node_the_run_launched_is_stopped_at_the_end() -> None:
    # given no node answers, and start launches one
    script = FakeScript({"start": (0, STARTED)})

    # when the run uses it and ends
    with local_node(script, lambda: False, NODE) as node:
        assert script.calls == ["fetch", "start"]
        assert node.from_home

    # then it is stopped
    assert script.calls == ["fetch", "start", "stop"]


def test_a_node_already_answering_is_left_running() -> None:
    # given this home's node already answers CQL
    script = FakeScript({"status": (0, "local-cassandra: running (pid 42)\n")})

    # when the run uses it and ends
    with local_node(script, lambda: True, NODE) as node:
        assert node.from_home

    # then it was neither started nor stopped
    assert script.calls == ["status"]


def test_another_homes_node_on_the_port_is_used_and_left_running() -> None:
    # given a node of another LOCAL_CASSANDRA_HOME answers on the port (this home's status: stopped)
    script = FakeScript({"status": (3, "local-cassandra: stopped\n")})

    # when the run uses it and ends
    with local_node(script, lambda: True, NODE) as node:
        # then it is known not to be this home's
        assert not node.from_home

    # and it was neither started nor stopped
    assert script.calls == ["status"]


def test_a_node_that_start_found_running_is_left_running() -> None:
    # given nothing answered yet, but this home's node was starting (start finds it running)
    script = FakeScript({"start": (0, ALREADY)})

    # when the run uses it and ends
    with local_node(script, lambda: False, NODE):
        pass

    # then another starter owns it: it is not stopped
    assert script.calls == ["fetch", "start"]


def test_jars_that_cannot_be_fetched_fail_the_run_before_any_start() -> None:
    # given Maven cannot fetch the node's jars
    script = FakeScript({"fetch": (1, "local-cassandra: error: Maven could not fetch\n")})

    # when the fixture sets up, then it fails naming the script's output, and starts nothing
    with (
        pytest.raises(pytest.fail.Exception, match="Maven could not fetch"),
        local_node(script, lambda: False, NODE),
    ):
        pass
    assert script.calls == ["fetch"]


def test_a_launched_node_that_never_answered_is_stopped_and_the_run_fails() -> None:
    # given start launches the node, which never answers CQL
    script = FakeScript({"start": (1, STARTED + "error: CQL did not answer\n")})

    # when the fixture sets up, then it fails naming the script's output
    with (
        pytest.raises(pytest.fail.Exception, match="CQL did not answer"),
        local_node(script, lambda: False, NODE),
    ):
        pass

    # and the launched node is stopped
    assert script.calls == ["fetch", "start", "stop"]


@pytest.mark.parametrize(
    ("stdout", "launched"),
    [(STARTED, True), (ALREADY, False), ("local-cassandra: error: port 9042 in use\n", False)],
    ids=["started", "already-running", "refused"],
)
def test_only_a_start_that_launched_the_daemon_counts(stdout: str, launched: bool) -> None:
    assert launched_the_node(subprocess.CompletedProcess(["start"], 0, stdout, "")) is launched


def test_processes_of_the_run_are_found_by_the_tag_in_their_environment() -> None:
    # given a detached process started by this run (its own session, like a daemon)
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        # when the run's processes are listed (again for a moment: under CI's load the listing
        # once missed the process just started), then it is among them
        deadline = time.monotonic() + 10
        found = processes_of_run(os.environ[RUN_ID_VARIABLE])
        while sleeper.pid not in found and time.monotonic() < deadline:
            time.sleep(0.2)
            found = processes_of_run(os.environ[RUN_ID_VARIABLE])
        assert found.get(sleeper.pid, "").startswith("sleep 60")
        # and a process of another run is not
        assert sleeper.pid not in processes_of_run("another-run")
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_run_that_leaves_a_process_behind_fails_lists_it_and_stops_it(tmp_path: Path) -> None:
    # given a test that starts a daemon-like process and never stops it, with this conftest
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    pid_file = tmp_path / "leftover.pid"
    (tmp_path / "test_leaky.py").write_text(
        textwrap.dedent(
            f"""
            import subprocess
            from pathlib import Path

            def test_leaks() -> None:
                process = subprocess.Popen(["sleep", "300"], start_new_session=True)
                Path({str(pid_file)!r}).write_text(str(process.pid))
            """
        )
    )

    # when that run ends
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **{k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"},
            "FEAST_SPARK_TEST_LEFTOVER_GRACE_S": "1",
        },
    )

    # then it fails although its test passed, naming the process
    pid = int(pid_file.read_text())
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "LEFTOVER PROCESSES" in done.stdout
    assert f"pid {pid}: sleep 300" in done.stdout
    # and the process is gone
    assert not is_alive(pid)
