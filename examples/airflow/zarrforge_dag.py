"""An Airflow DAG that runs `zarrforge convert` under MPI and retries interrupted runs.

DAG `zarrforge_convert`, one task `convert`: a BashOperator running

    mpirun -n NP $ZARRFORGE convert INPUTS... -o STORE ARGS --events EVENTS_FILE \
        --progress-interval 10 [--resume]

- the task log gets zarrforge's plain progress lines ("write: x/y units (p%), GB, GB/s, ETA",
  every params.progress_interval seconds) and phases; its JSON Lines events go to EVENTS_FILE,
  next to the task log: BASE_LOG_FOLDER/dag_id=.../run_id=.../task_id=convert/attempt=N.events.jsonl
  (or params.events_dir/<run_id>.attempt=N.events.jsonl); at the end of each try the task logs the
  warnings and the `committed` or `failed` event from it;
- exit 0: the task succeeds; its XCom return value is the `committed` event (a dict);
- exit 75 (interrupted, resumable: SIGTERM to the ranks, a time limit, a lost node): the task
  fails and Airflow retries it (`retries`); every retry (try_number > 1) adds `--resume`, which
  finishes the conversion from the store's journal;
- any other failure: the task fails without retries (AirflowFailException) with the `failed`
  event's error text as its message.

Inputs and store: the DAG params, which a run's conf overrides
    airflow dags trigger zarrforge_convert -c '{"inputs": ["/data/a.nc", "/data/b.nc"], "store": "/data/out.zarr"}'
    airflow dags test zarrforge_convert -c '{...}'
Their defaults come from the environment of the DAG processor:
    ZARRFORGE_INPUTS (files or quoted globs, shell-quoted, space-separated), ZARRFORGE_STORE,
    ZARRFORGE_NP (2), ZARRFORGE_LAUNCHER (mpirun; any launcher taking `-n NP`, e.g. srun; empty for
    none), ZARRFORGE_ARGS (more `zarrforge convert` options, e.g. "--codec zstd:5"),
    ZARRFORGE_PROGRESS_INTERVAL (seconds, 10), ZARRFORGE_RETRIES (3), ZARRFORGE_RETRY_DELAY
    (seconds, 30).
ZARRFORGE names the binary in the workers' environment (default: zarrforge on PATH).

Put this file into the DAGs folder. Works with Airflow 3 (tested with 3.3) and Airflow 2.x.
"""

from __future__ import annotations

import json
import os
import shlex
from datetime import timedelta

import pendulum

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.exceptions import AirflowException, AirflowFailException, AirflowSkipException
    from airflow.operators.bash import BashOperator

try:
    from airflow.configuration import conf as airflow_conf
except ImportError:  # pragma: no cover
    airflow_conf = None

INTERRUPTED = 75  # zarrforge's exit status: interrupted, run again with --resume


def _env_list(name: str) -> list[str]:
    return shlex.split(os.environ.get(name, ""))


def events_file(params: dict, ti) -> str:
    """Where the events of this try go: next to its task log, or into params.events_dir."""
    attempt = f"attempt={ti.try_number}.events.jsonl"
    if params.get("events_dir"):
        return os.path.join(params["events_dir"], f"{ti.run_id}.{attempt}".replace(":", "_"))
    base = os.path.expanduser(
        airflow_conf.get("logging", "base_log_folder") if airflow_conf else "~/airflow/logs"
    )
    parts = [base, f"dag_id={ti.dag_id}", f"run_id={ti.run_id}", f"task_id={ti.task_id}"]
    if getattr(ti, "map_index", -1) >= 0:
        parts.append(f"map_index={ti.map_index}")
    return os.path.join(*parts, attempt)


def zarrforge_command(params: dict, ti) -> str:
    """The bash script of one try (a Jinja macro: rendered before the task runs)."""
    inputs = params.get("inputs") or []
    if isinstance(inputs, str):
        inputs = shlex.split(inputs)
    store = params.get("store") or ""
    extra = params.get("extra_args") or ""
    extra = shlex.split(extra) if isinstance(extra, str) else list(extra)
    launcher = shlex.split(params.get("launcher") or "")
    if launcher:
        launcher += ["-n", str(int(params.get("np") or 2))]
    if ti.try_number > 1:
        # A retry finishes the interrupted conversion; --overwrite would start it over.
        extra = [a for a in extra if a != "--overwrite"]
        if "--resume" not in extra:
            extra.append("--resume")
    events = events_file(params, ti)
    convert = " ".join(
        [*map(shlex.quote, launcher), '"${ZARRFORGE:-zarrforge}"', "convert"]
        + [shlex.quote(f) for f in inputs]
        + ["-o", shlex.quote(store), *map(shlex.quote, extra)]
        + ["--events", shlex.quote(events)]
        + ["--progress-interval", f"{float(params.get('progress_interval') or 10):g}"]
    )
    # The events go to a file, not to stdout: the task log is one pipe for stdout and stderr.
    return "\n".join([
        "echo " + shlex.quote(f"zarrforge try {ti.try_number}: events in {events}"),
        f"mkdir -p {shlex.quote(os.path.dirname(events))}",
        convert,
    ])


def read_events(path: str) -> list[dict]:
    """The events of the file (none when it is missing)."""
    events = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if isinstance(ev, dict) and "event" in ev:
                    events.append(ev)
    except OSError:
        pass
    return events


def _last(events: list[dict], kind: str) -> dict | None:
    return next((ev for ev in reversed(events) if ev["event"] == kind), None)


class ZarrforgeConvertOperator(BashOperator):
    """A BashOperator that reads zarrforge's events: the committed event is its result, a
    failure other than an interruption is not retried, and the error text is in the message."""

    def execute(self, context):
        params, ti = context["params"], context["ti"]
        if not params.get("inputs") or not params.get("store"):
            raise AirflowFailException(
                "set params.inputs and params.store (DAG run conf) or ZARRFORGE_INPUTS and "
                "ZARRFORGE_STORE (environment)"
            )
        path = events_file(params, ti)
        try:
            super().execute(context)
        except AirflowSkipException:
            raise
        except AirflowException as err:
            events = self._log_events(path)
            if events and events[-1]["event"] == "committed":
                self.log.warning("the launcher failed (%s), but zarrforge committed the store", err)
                return events[-1]
            failed = _last(events, "failed")
            if failed is None:
                raise  # no event says why: the task's retries decide
            message = f"zarrforge failed (exit {failed.get('exit_status')}): {failed.get('error')}"
            if failed.get("exit_status") == INTERRUPTED:
                self.log.warning("%s; the retry adds --resume", message)
                raise AirflowException(f"{message}; the retry adds --resume") from err
            raise AirflowFailException(message) from err
        committed = _last(self._log_events(path), "committed")
        if committed is None:
            raise AirflowFailException(f"zarrforge exited 0 but {path} has no committed event")
        self.log.info(
            "committed %s: %s array(s), %s units written, %s resumed, %.3f GB written in %.1f s",
            committed.get("output"), committed.get("arrays"), committed.get("units_written"),
            committed.get("units_resumed"), (committed.get("bytes_written") or 0) / 1e9,
            committed.get("seconds") or 0,
        )
        return committed

    def _log_events(self, path: str) -> list[dict]:
        """Logs the warnings, failed ranks and the outcome of the try's events; returns them."""
        events = read_events(path)
        for ev in events:
            if ev["event"] == "warning":
                self.log.warning("zarrforge warning: %s", ev.get("message"))
            elif ev["event"] == "rank_failed":
                self.log.warning("zarrforge rank %s failed: %s", ev.get("rank"), ev.get("message"))
            elif ev["event"] in ("committed", "failed"):
                self.log.info("zarrforge event: %s", json.dumps(ev))
        return events


with DAG(
    dag_id="zarrforge_convert",
    description="Convert netCDF files into one Zarr store with zarrforge (MPI)",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["zarrforge"],
    params={
        "inputs": _env_list("ZARRFORGE_INPUTS"),
        "store": os.environ.get("ZARRFORGE_STORE", ""),
        "np": int(os.environ.get("ZARRFORGE_NP", "2")),
        "launcher": os.environ.get("ZARRFORGE_LAUNCHER", "mpirun"),
        "extra_args": os.environ.get("ZARRFORGE_ARGS", ""),
        "progress_interval": float(os.environ.get("ZARRFORGE_PROGRESS_INTERVAL", "10")),
        "events_dir": "",
    },
    user_defined_macros={"zarrforge_command": zarrforge_command},
) as dag:
    convert = ZarrforgeConvertOperator(
        task_id="convert",
        bash_command="{{ zarrforge_command(params, ti) }}",
        retries=int(os.environ.get("ZARRFORGE_RETRIES", "3")),
        retry_delay=timedelta(seconds=float(os.environ.get("ZARRFORGE_RETRY_DELAY", "30"))),
    )
