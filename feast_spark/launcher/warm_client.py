"""``python -m feast_spark.launcher.warm_client``: run a job in a warm driver, like spark-submit.

The supervisor runs this in place of spark-submit when the launcher sends a job to the
project's warm driver (:mod:`feast_spark.launcher.warm`). It hands the job to the driver, writes
the job's output to its own (the job's log) and exits with the job's exit status, so the
supervisor records the job like any other. SIGTERM (a cancel) is passed on to the driver, which
cancels the job's Spark work; if this process is killed, the driver sees the connection close
and cancels the job as well. A driver that ends while the job runs fails the job, saying so.

A driver that does not take the job (gone since the launcher asked, stopping, or its environment
differs from this one in a variable the spec names) has not started it: this process then
becomes the job's spark-submit (``--fallback``, the command the launcher would have run), so
the job runs all the same, in the same process group the supervisor watches.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
from types import FrameType

from feast_spark import warm_protocol


def main(argv: list[str] | None = None) -> int:
    """Run the job; return its exit status (1 when the driver could not run it to its end)."""
    parser = argparse.ArgumentParser(prog="feast_spark.launcher.warm_client")
    for name in ("--socket", "--driver-job", "--job-id", "--job-type", "--job-file"):
        parser.add_argument(name, required=True)
    parser.add_argument("--session-conf", default="{}")
    parser.add_argument("--env-names", default="", help="comma-separated: compared in the driver")
    parser.add_argument("--fallback", default="[]", help="JSON: the job's spark-submit command")
    parser.add_argument("args", nargs="*")
    args = parser.parse_args(argv)
    driver = f"warm driver {args.driver_job}"
    fallback = json.loads(args.fallback)
    try:
        connection = warm_protocol.connect(args.socket)
    except OSError as error:
        return _run_cold(fallback, f"the {driver} at {args.socket} does not answer ({error})")
    connection.settimeout(None)  # a job takes as long as it takes; the driver's end closes it

    def on_cancel(_signum: int, _frame: FrameType | None) -> None:
        print(f"feast-spark: cancel requested; asking the {driver} to stop the job", flush=True)
        with contextlib.suppress(OSError):  # the driver is gone already: nothing runs
            warm_protocol.send(connection, {"op": "cancel"})

    signal.signal(signal.SIGTERM, on_cancel)
    signal.signal(signal.SIGINT, on_cancel)
    with connection:
        status = _run(connection, args, driver)
    if isinstance(status, str):  # refused before it started
        return _run_cold(fallback, f"the {driver} did not take the job: {status}")
    return status


def _run(connection: socket.socket, args: argparse.Namespace, driver: str) -> int | str:
    """The job's exit status, or the driver's reason for not starting it."""
    names = [name for name in args.env_names.split(",") if name]
    with contextlib.suppress(OSError), connection.makefile("rb") as stream:
        warm_protocol.send(
            connection,
            {
                "op": "run",
                "job_id": args.job_id,
                "job_type": args.job_type,
                "job_file": args.job_file,
                "args": list(args.args),
                "session_conf": json.loads(args.session_conf),
                "env": {name: os.environ.get(name) for name in names},
            },
        )
        for message in warm_protocol.receive(stream):
            if "refused" in message:
                return str(message["refused"])
            if "started" in message:
                print(f"feast-spark: running in the {driver} ({args.socket})", flush=True)
                if message.get("ui_url"):  # where `jobs` finds the job's progress
                    print(f"feast-spark: the warm driver's Spark UI is at {message['ui_url']}",
                          flush=True)  # fmt: skip
            elif "log" in message:
                sys.stdout.write(str(message["log"]))
                sys.stdout.flush()
            elif "exit" in message:
                status = message["exit"]
                return status if isinstance(status, int) else 1
    print(f"feast-spark: the {driver} ended while the job ran (stopped, or killed); what the "
          "job committed before that stays (each Delta commit is all or nothing): run the job "
          "again", flush=True)  # fmt: skip
    return 1


def _run_cold(fallback: list[str], reason: str) -> int:
    """Become the job's own spark-submit (this process keeps its pid and process group)."""
    if not fallback:
        print(f"feast-spark: {reason}; the job did not start: run it again", flush=True)
        return 1
    print(f"feast-spark: {reason}; running the job in its own spark-submit", flush=True)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execvp(fallback[0], fallback)


if __name__ == "__main__":
    sys.exit(main())
