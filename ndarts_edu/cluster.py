"""Many independent searches side by side: one after another in this process, or on a Dask cluster.

``compare``, ``sweep`` and ``ablations`` are grids of searches that share nothing but their
settings, so each search is one task. The engine is Dask distributed, used as its docs intend
(``Client.submit`` with an explicit key, ``as_completed``): a ``LocalCluster`` of worker
processes with one thread each on this machine, or any running scheduler (``cluster=ADDRESS``),
which Dask deploys on Slurm and other batch systems (dask-jobqueue), Kubernetes and clouds. Dask
is imported here only, and only when searches go to it: ``workers=1`` runs them in this process,
and ``import ndarts_edu`` or a single search never needs it.

- The same numbers however many workers: a search depends on its settings alone. Its seed seeds
  every generator when it starts and its torch thread count is pinned (the presets pin one), so it
  does not matter where, or after which other search, it runs (tests/test_cluster.py checks that a
  two-worker run equals an in-process one, bit for bit).
- Only this process writes files: ``on_result`` is called here, as each search finishes.
- A worker that dies loses its running search only. Dask gives that search to another worker, up
  to ``distributed.scheduler.allowed-failures`` times; after that it is reported ``lost`` and the
  caller's next run does it.
- Ctrl-C (``KeyboardInterrupt``) or ``stop`` cancels the searches not finished; the finished ones
  have been handed to ``on_result`` already.
"""
import logging
import os
import signal
import threading
import time
import uuid

from .errors import ConfigError, check_number, one_line
from .search import Search, SearchConfig, SearchDiverged

PROGRESS_TOPIC = "ndarts_edu.progress"
STEP_EVENTS_EVERY = 1.0  # seconds between a search's "step" events (each a message on a cluster)
STOP_POLL_EVERY = 2.0  # seconds between two looks of a worker's search at the run's stop flag
CONNECT_TIMEOUT = "10s"


def available_cores():
    """The cores this process may run on (its CPU affinity, where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(threads):
    """One worker per core, each search keeping its ``threads`` (``None``: torch's default, all)."""
    return max(1, available_cores() // (threads or available_cores()))


def check_workers(workers, cluster):
    """Validate ``workers`` and ``cluster`` once, where they enter (before any search starts)."""
    if workers is not None:
        workers = int(check_number("workers", workers, minimum=1, integer=True))
    if cluster is not None and (not isinstance(cluster, str) or not cluster.strip()):
        raise ConfigError(f"cluster must be a scheduler address such as tcp://host:8786, "
                          f"got {cluster!r}")
    if cluster is not None and workers is not None:
        raise ConfigError("give --workers or --cluster, not both: a running cluster brings its own "
                          "workers")
    return workers, cluster


def run_searches(configs, on_result, labels=None, on_event=None, workers=None, cluster=None,
                 stop=None):
    """Run a search of each ``SearchConfig`` in ``configs``; return the indices of those lost.

    ``on_result(index, result)`` is called in this process as each search ends, finished or
    diverged, in the order they end. ``on_event(index, event)`` gets plain dicts: ``started``,
    ``step`` (at most every second), ``epoch``, ``done``, ``lost``, each with the search's
    ``label``; and once, with index ``None``, ``where`` (what runs the searches).
    ``workers=None`` or 1 (and no ``cluster``) runs them here, one after another; ``workers=N``
    on a local Dask cluster of N processes; ``cluster`` on the Dask scheduler at that address.
    A search that raises (bad data on a worker, say) cancels the rest; its error is raised here.
    """
    configs = list(configs)
    labels = list(labels or (f"search {k + 1}" for k in range(len(configs))))
    workers, cluster = check_workers(workers, cluster)

    def emit(index, event):  # every event of a search carries its label
        if on_event:
            on_event(index, event if index is None else {**event, "label": labels[index]})

    if not configs:
        return []
    if cluster is None and min(workers or 1, len(configs)) == 1:
        return _run_here(configs, on_result, emit, stop)
    workers = min(workers or 1, len(configs))
    return _run_on_dask(configs, on_result, emit, workers, cluster, stop)


# -- one search, wherever it runs ------------------------------------------------------------------
def run_one(config, emit, stop):
    """Search ``config`` to its end, ``emit(event)`` telling how far; the result, any status."""
    search = Search(config)
    steps = search.config.epochs * search.steps_per_epoch
    emit({"event": "started", "steps": steps, "epochs": search.config.epochs})
    last = [0.0]

    def on_step(record):
        now = time.monotonic()
        if now - last[0] >= STEP_EVENTS_EVERY:
            last[0] = now
            emit({"event": "step", "step": record["step"], "steps": steps,
                  "loss": record["train_loss"]})

    def on_epoch(record):
        emit({"event": "epoch", "epoch": record["epoch"], "epochs": search.config.epochs,
              "loss": record["train_loss"], "skip_share": record["skip_share"],
              "seconds": record["seconds"]})

    try:
        return search.run(on_step=on_step, on_epoch=on_epoch, stop=stop)
    except SearchDiverged as error:  # recorded, not raised: the caller decides what it means
        return error.result


def _done_event(result):
    return {"event": "done", "status": result["status"], "skip_share": result["skip_share"],
            "genotype_skips": result["genotype_skips"], "valid_accuracy": result["valid_accuracy"],
            "seconds": result["seconds"]}


def _run_here(configs, on_result, emit, stop):
    """In this process, one by one (no Dask); Ctrl-C stops the running search after its step."""
    stop = stop or threading.Event()
    emit(None, {"event": "where", "where": "this process", "workers": 1})
    try:
        for index, config in enumerate(configs):
            if stop.is_set():
                break
            result = run_one(config, lambda event, index=index: emit(index, event), stop)
            if result["status"] not in ("finished", "diverged"):
                break  # stopped: the finished ones are kept
            with _ctrl_c_waits():  # counted and kept, or neither
                emit(index, _done_event(result))
                on_result(index, result)
    except KeyboardInterrupt:
        pass  # a second Ctrl-C, or one between two searches: the finished ones were handed over
    return []


class _ctrl_c_waits:
    """Hold a Ctrl-C back while a finished search is handed over (and saved), then raise it.

    Without this, a Ctrl-C landing between the result counted and the file written lost that
    search from the file. Signal handlers belong to the main thread: elsewhere it does nothing.
    """

    def __enter__(self):
        self.caught, self.previous = [], None
        # None: a handler set outside Python, which could not be put back; it is left alone
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is not None):
            self.previous = signal.signal(signal.SIGINT, lambda *frame: self.caught.append(frame))
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if self.caught and exc[0] is None:
            raise KeyboardInterrupt
        return False


# -- on a Dask cluster ------------------------------------------------------------------------
def _search_task(index, config, token, stop_name):
    """What a Dask worker runs: one search, its progress sent as events of the run ``token``."""
    from distributed import Event, get_worker

    worker = get_worker()
    stop, flag, looked = threading.Event(), Event(stop_name), [time.monotonic()]

    def emit(event):
        worker.log_event(PROGRESS_TOPIC, {"token": token, "index": index, **event})
        # The client sets the run's flag when it is interrupted: a running search then stops
        # after its step, instead of running to its end for nobody (Dask cannot stop a thread).
        if event["event"] == "step" and time.monotonic() - looked[0] > STOP_POLL_EVERY:
            looked[0] = time.monotonic()
            if flag.is_set():
                stop.set()

    return run_one(SearchConfig.from_dict(config), emit, stop)


def dask_setup(worker):
    """Dask's preload hook, run in each worker process of a local cluster as it starts.

    A Ctrl-C in the terminal reaches the whole process group, the workers too: they leave it to
    this process, which cancels the run and closes them (else each prints a traceback as it dies).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _connect(workers, cluster):
    """A Dask client: of the scheduler at ``cluster``, or of a new local cluster of ``workers``."""
    from distributed import Client, LocalCluster

    if cluster is not None:
        try:
            return Client(cluster, timeout=CONNECT_TIMEOUT), None
        except (OSError, TimeoutError, ValueError) as error:
            raise ConfigError(f"cannot reach a Dask scheduler at {cluster!r} "
                              f"({one_line(error)}); start one (dask scheduler) or check the "
                              "address") from None
    local = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         dashboard_address=":0", silence_logs=logging.ERROR, preload=[__name__])
    return Client(local), local


def _run_on_dask(configs, on_result, emit, workers, cluster, stop):
    from distributed import Event, wait
    from distributed.scheduler import KilledWorker

    client, local = _connect(workers, cluster)
    token = uuid.uuid4().hex[:8]  # this run's keys and events, apart from other clients'
    stop = stop or threading.Event()
    waiting, running, lost = list(range(len(configs))), {}, []
    try:
        flag = Event(f"ndarts_edu-stop-{token}", client=client)
        where = "a local Dask cluster" if local is not None else f"the Dask cluster at {cluster}"
        emit(None, {"event": "where", "where": where, "workers": len(client.nthreads()),
                    "dashboard": _dashboard(client)})

        def relay(event):  # called in the client's event-loop thread
            message = event[1]
            if isinstance(message, dict) and message.get("token") == token:
                fields = {k: v for k, v in message.items() if k not in ("token", "index")}
                emit(message["index"], fields)

        client.subscribe_topic(PROGRESS_TOPIC, relay)
        while (waiting or running) and not stop.is_set():
            # One search per worker thread at a time: the others wait here, not in a worker's queue,
            # so a worker that dies loses only the search it was running, and one that joins later
            # (a cluster that scales up) gets the next.
            room = max(1, sum(client.nthreads().values())) - len(running)
            for index in waiting[:max(room, 0)]:
                payload = _pinned(configs[index]).to_dict()
                key = f"search-{token}-{index}"  # explicit, unique: each search is submitted once
                future = client.submit(_search_task, index, payload, token, flag.name, key=key)
                running[future] = index
            waiting = waiting[max(room, 0):]
            try:
                done = wait(list(running), timeout=1.0, return_when="FIRST_COMPLETED").done
            except TimeoutError:  # none finished this second: look at stop and at new workers again
                continue
            for future in sorted(done, key=running.get):
                index = running.pop(future)
                if future.status == "error":
                    error = future.exception()
                    if not isinstance(error, KilledWorker):
                        raise error  # a search that cannot run (bad data on a worker): stop here
                    lost.append(index)  # Dask gave up (its workers died): the next run does it
                    emit(index, {"event": "lost", "error": one_line(error)})
                elif future.status == "finished":
                    result = future.result()
                    future.release()  # the scheduler may forget it: the result is here now
                    if result["status"] in ("finished", "diverged"):
                        with _ctrl_c_waits():  # counted and kept, or neither
                            emit(index, _done_event(result))
                            on_result(index, result)
    except KeyboardInterrupt:
        pass  # the finished searches were handed over; the rest is cancelled below
    finally:
        if running:
            try:
                flag.set()  # the searches running stop after their step
                client.cancel(list(running))
            except Exception:  # the scheduler is gone: nothing left to cancel
                pass
        with _quiet():
            client.close()
            if local is not None:
                local.close()
    return lost


def _pinned(config):
    """``config`` with its thread count resolved as here (a worker's default differs)."""
    if config.threads is not None:
        return config
    import torch

    return config.replace(threads=torch.get_num_threads())


def _dashboard(client):
    """The link to Dask's dashboard, where it can show one (it needs bokeh)."""
    import importlib.util

    if importlib.util.find_spec("bokeh") is None:
        return None
    try:
        return client.dashboard_link
    except Exception:  # turned off on that scheduler
        return None


class _quiet:
    """Closing a cluster can log about the streams it closes: not the user's concern."""

    def __enter__(self):
        self.logger = logging.getLogger("distributed")
        self.level = self.logger.level
        self.logger.setLevel(logging.CRITICAL)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)
        return False
