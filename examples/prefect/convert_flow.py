#!/usr/bin/env python3
"""A Prefect 3 flow that runs `zarrforge convert` under MPI and retries interrupted runs.

The task launches

    mpirun -n NP $ZARRFORGE convert INPUTS... -o STORE --events - --quiet [ARGS...]

reads zarrforge's JSON Lines events (schema "zarrforge-events/1") from the child's stdout as they
arrive and logs them through Prefect's run logger: the start, the phases, the plan, progress
("x/y units, GB/s, ETA", every --log-interval seconds: zarrforge's --progress-interval), warnings (as warnings),
failed ranks, the commit or the failure. Then, by zarrforge's exit status:

    0     the task returns the `committed` event (a dict) as its result;
    75    interrupted (SIGTERM to the ranks, a time limit, a lost node), resumable: the task raises
          ZarrforgeInterrupted and Prefect retries it; every retry adds `--resume`, which finishes
          the conversion from the store's journal;
    else  the task raises ZarrforgeFailed with the `failed` event's error text; it is not retried
          and the flow fails.

Run it as a script (no Prefect server needed: Prefect starts a temporary local one, unless
PREFECT_API_URL points at a server):

    python convert_flow.py -o out.zarr --np 4 run42/*.nc
    python convert_flow.py -o out.zarr --np 4 run42/*.nc -- --codec zstd:5 --chunks time=24

Arguments after `--` go to `zarrforge convert` unchanged. ZARRFORGE names the binary (default:
`zarrforge` on PATH); --launcher the MPI launcher (default `mpirun`; `srun` works too, as any
launcher taking `-n NP`; an empty string runs zarrforge without one). Or import `convert_flow`
(the flow) or `convert_task` (the task) into your own flows.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shlex
import subprocess
import sys
import threading
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.runtime import task_run as current_task_run

INTERRUPTED = 75  # zarrforge's exit status: interrupted, run again with --resume


class ZarrforgeInterrupted(RuntimeError):
    """zarrforge stopped cleanly before the end (exit 75): a retry with --resume finishes it."""


class ZarrforgeFailed(RuntimeError):
    """zarrforge failed for good (bad input, store refused, ...): retrying would not help."""

    def __init__(self, message: str, exit_status: int | None):
        super().__init__(message)
        self.exit_status = exit_status


def _retry_if_interrupted(task_, task_run, state) -> bool:
    """Prefect's retry_condition_fn: retry only interrupted runs."""
    try:
        state.result()
    except ZarrforgeInterrupted:
        return True
    except BaseException:
        return False
    return False


def build_command(
    inputs: list[str],
    store: str,
    np: int,
    launcher: str,
    extra_args: list[str],
    resume: bool,
    log_interval: float = 10.0,
) -> list[str]:
    """The launcher command line of one attempt."""
    zarrforge = os.environ.get("ZARRFORGE") or "zarrforge"
    cmd = shlex.split(launcher) + ["-n", str(np)] if launcher.strip() else []
    args = list(extra_args)
    if resume:
        # A retry finishes the interrupted conversion; --overwrite would start it over.
        args = [a for a in args if a != "--overwrite"]
        if "--resume" not in args:
            args.append("--resume")
    if "--quiet" not in args:
        args.append("--quiet")  # the events carry the progress; stderr keeps errors only
    if not any(a.split("=")[0] == "--progress-interval" for a in args):
        args += ["--progress-interval", f"{log_interval:g}"]  # how often a progress event comes
    return cmd + [zarrforge, "convert", *inputs, "-o", store, "--events", "-", *args]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _gb(n: Any) -> str:
    return f"{(n or 0) / 1e9:.3f} GB"


class EventLogger:
    """Turns zarrforge events into Prefect log lines; remembers the last committed/failed one."""

    def __init__(self, logger):
        self.log = logger
        self.committed: dict | None = None
        self.failed: dict | None = None
        self.events = 0

    def handle(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        try:
            ev = json.loads(line)
            kind = ev["event"]
        except (ValueError, KeyError, TypeError):
            self.log.info("zarrforge: %s", line)  # not an event: show it as it is
            return
        self.events += 1
        if kind == "started":
            self.log.info(
                "started zarrforge %s: %d input(s) -> %s, %s rank(s) on %s node(s) (run %s)",
                ev.get("version"), len(ev.get("inputs") or []), ev.get("output"),
                ev.get("ranks"), ev.get("nodes"), ev.get("run"),
            )
        elif kind == "phase":
            self.log.info("phase %s (%.1f s)", ev.get("phase"), ev.get("elapsed_s") or 0)
        elif kind == "planned":
            self.log.info(
                "planned: %s file(s), %s array(s), %s of %s units to write (%s resumed), %s, mode %s",
                ev.get("files"), ev.get("arrays"), ev.get("units_to_write"), ev.get("units_total"),
                ev.get("units_resumed"), _gb(ev.get("bytes_to_write")), ev.get("mode"),
            )
        elif kind == "progress" and ev.get("phase") == "scan":
            # The scan counts input files (no bytes).
            self.log.info(
                "scan: %s/%s files, ETA %s, %s rank(s) reporting", ev.get("units_done"),
                ev.get("units_total"), _duration(ev.get("eta_s")), ev.get("ranks_reporting"),
            )
        elif kind == "progress":
            total = ev.get("units_total") or 0
            pct = 100.0 * (ev.get("units_done") or 0) / total if total else 100.0
            self.log.info(
                "%s: %s/%s units (%.0f%%), %s/%s, %.3f GB/s, ETA %s, %s rank(s) reporting",
                ev.get("phase"), ev.get("units_done"), total, pct, _gb(ev.get("bytes_done")),
                _gb(ev.get("bytes_total")), ev.get("gb_per_s") or 0.0, _duration(ev.get("eta_s")),
                ev.get("ranks_reporting"),
            )
        elif kind == "warning":
            self.log.warning("zarrforge warning: %s", ev.get("message"))
        elif kind == "rank_failed":
            self.log.warning(
                "rank %s failed (%s): %s", ev.get("rank"),
                "resumable" if ev.get("resumable") else "not resumable", ev.get("message"),
            )
        elif kind == "committed":
            self.committed = ev
            self.log.info(
                "committed %s: %s array(s), %s units written, %s resumed, %s read, %s written in %.1f s",
                ev.get("output"), ev.get("arrays"), ev.get("units_written"), ev.get("units_resumed"),
                _gb(ev.get("bytes_read")), _gb(ev.get("bytes_written")), ev.get("seconds") or 0,
            )
        elif kind == "failed":
            self.failed = ev
            self.log.error(
                "failed (exit %s, %s): %s", ev.get("exit_status"),
                "resumable" if ev.get("resumable") else "not resumable", ev.get("error"),
            )
        else:
            self.log.info("zarrforge event %s: %s", kind, line)


@task(
    name="zarrforge-convert",
    retries=3,
    retry_delay_seconds=10,
    retry_condition_fn=_retry_if_interrupted,
)
def convert_task(
    inputs: list[str],
    store: str,
    np: int = 2,
    launcher: str = "mpirun",
    extra_args: list[str] | None = None,
    log_interval: float = 10.0,
) -> dict:
    log = get_run_logger()
    attempt = current_task_run.run_count or 1
    cmd = build_command(inputs, store, np, launcher, extra_args or [], resume=attempt > 1,
                        log_interval=log_interval)
    log.info("attempt %d: %s", attempt, shlex.join(cmd))

    events = EventLogger(log)
    stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, bufsize=1,
    )

    def read_stderr() -> None:
        for line in proc.stderr:
            line = line.rstrip("\n")
            if line:
                stderr_tail.append(line)
                log.info("stderr: %s", line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        for line in proc.stdout:  # one event per line, as zarrforge flushes them
            events.handle(line)
        rc = proc.wait()
    finally:
        if proc.poll() is None:
            # The task is being cancelled: stop the ranks cleanly (they exit 75, resumable).
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    reader.join(timeout=10)

    if events.committed is not None:
        if rc != 0:
            log.warning("the launcher exited %d, but zarrforge committed the store", rc)
        return events.committed
    failed = events.failed or {}
    error = failed.get("error") or (stderr_tail[-1] if stderr_tail else "no error message")
    status = failed.get("exit_status", rc)
    if rc == 0:
        raise ZarrforgeFailed(f"zarrforge exited 0 without a committed event ({error})", rc)
    if rc == INTERRUPTED or status == INTERRUPTED:
        raise ZarrforgeInterrupted(
            f"zarrforge was interrupted (exit {rc}): {error}; retrying with --resume"
        )
    raise ZarrforgeFailed(f"zarrforge failed (exit {status}): {error}", status)


@flow(name="zarrforge-convert")
def convert_flow(
    inputs: list[str],
    store: str,
    np: int = 2,
    launcher: str = "mpirun",
    extra_args: list[str] | None = None,
    retries: int = 3,
    retry_delay_seconds: float = 10,
    log_interval: float = 10.0,
) -> dict:
    """Convert INPUTS into the Zarr store STORE; returns zarrforge's `committed` event."""
    convert = convert_task.with_options(retries=retries, retry_delay_seconds=retry_delay_seconds)
    return convert(inputs, store, np=np, launcher=launcher, extra_args=extra_args or [],
                   log_interval=log_interval)


def main(argv: list[str]) -> int:
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(
        description="Convert netCDF files to a Zarr store with zarrforge, as a Prefect flow.",
        epilog="Arguments after `--` are passed to `zarrforge convert`. "
        "ZARRFORGE=/path/to/zarrforge names the binary (default: zarrforge on PATH).",
    )
    p.add_argument("inputs", nargs="+", metavar="FILE", help="input netCDF files (or quoted globs)")
    p.add_argument("-o", "--output", required=True, help="the Zarr store to write")
    p.add_argument("--np", type=int, default=2, help="MPI ranks (default 2)")
    p.add_argument("--launcher", default="mpirun",
                   help="MPI launcher taking `-n NP` (default mpirun; '' for none)")
    p.add_argument("--retries", type=int, default=3, help="retries of an interrupted run (default 3)")
    p.add_argument("--retry-delay", type=float, default=10, help="seconds before a retry (default 10)")
    p.add_argument("--log-interval", type=float, default=10,
                   help="seconds between progress lines in the log (default 10)")
    a = p.parse_args(argv)
    state = convert_flow(
        a.inputs, a.output, np=a.np, launcher=a.launcher, extra_args=extra, retries=a.retries,
        retry_delay_seconds=a.retry_delay, log_interval=a.log_interval, return_state=True,
    )
    print(f"flow run state: {state.name}", file=sys.stderr)
    if state.is_completed():
        print(json.dumps(state.result()))  # the committed event, for scripts
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
