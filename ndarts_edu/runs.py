"""A search's run and its files: the result as plain data, checkpoints, atomic writes, Ctrl-C.

``search.Search`` holds the algorithm and a plain loop (``Search.loop``); this module runs that loop
so that nothing computed is lost:

- ``run``: the loop, with a status (finished, stopped, diverged, interrupted), and with ``out_dir``
  a checkpoint after every epoch and on any stop, ``result.json`` at the end (also on a divergence
  or a second Ctrl-C: the history so far).
- ``result``: everything a reader needs, as plain data (``RESULT_FORMAT``: ``result.json``).
- ``state_dict``, ``load_state_dict``, ``check_fits``: a search's exact state (tensors and plain
  data only), and the refusal of a state that does not fit, before anything is overwritten.
- ``save_checkpoint``, ``load_checkpoint``, ``resume``: the state on disk, loaded safely
  (``weights_only=True``: never code), and a search rebuilt from it.
- ``atomic_write_json``: every file is written to a temporary name, then renamed.
- ``stop_on_sigint``: in the main thread, a first Ctrl-C asks the search to stop after its step.

A data-parallel search (``distributed``) runs this on every rank: rank 0 alone writes files, the
stop is agreed on by all ranks, and a checkpoint holds every rank's generator states.

``Search.run``, ``Search.result``, ``Search.state_dict``, ``Search.load_state_dict`` and
``Search.resume`` are doors into these functions.
"""
import contextlib
import json
import os
import pickle
import signal
import threading
import warnings

import torch

from . import derive, repro
from .config import SearchConfig
from .errors import ConfigError, SearchDiverged

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
RESULT_FORMAT = "ndarts_edu.result/1"
CHECKPOINT_KEYS = ("config", "model", "w_optimizer", "a_optimizer", "train_batches",
                   "valid_batches", "rng", "progress", "history")


# -- the run ------------------------------------------------------------------------------------
def run(search, on_step=None, on_epoch=None, stop=None, out_dir=None, epochs=None):
    """Run ``search`` until ``config.epochs`` (or ``epochs``), a stop, a Ctrl-C or a divergence.

    ``on_step(record)`` and ``on_epoch(record)`` get plain dicts; ``stop`` is a
    ``threading.Event`` checked after every step. With ``out_dir`` a checkpoint is written
    after every epoch and on any stop, and ``result.json`` at the end. Returns ``result(search)``.
    """
    if epochs is not None:
        search.extend(epochs)
    stop = stop or threading.Event()
    restore_sigint = stop_on_sigint(stop)

    def epoch_done(record):
        if out_dir:
            save_checkpoint(search, out_dir)
        if on_epoch:
            on_epoch(record)

    search.status, search.message = "running", ""
    try:
        # data-parallel: a stop set on any rank stops every rank after the same step
        search.loop(on_step, epoch_done, search.replicas.agreed(stop))
        search.status = "finished" if search.done else "stopped"
        if search.status == "stopped":
            search.message = (f"stopped at step {search.step} (epoch {search.epoch + 1}, "
                              f"step {search.step_in_epoch} of it)")
            if out_dir:
                save_checkpoint(search, out_dir)
    except SearchDiverged as error:
        search.status, search.message = "diverged", str(error)
        error.result = result(search)  # the history so far, also for callers of run_search
        if out_dir:  # keep the last good checkpoint (the last epoch's); save what was learnt
            save_result(search, out_dir, error.result)
        raise
    except KeyboardInterrupt:
        # A second Ctrl-C lands mid-step: no checkpoint of that, the last one stays the good one.
        search.status = "interrupted"
        search.message = (f"interrupted during step {search.step + 1}; "
                          "a resume continues from the last checkpoint")
        if out_dir:
            save_result(search, out_dir)
        raise
    finally:
        restore_sigint()
    data = result(search)
    if out_dir:
        save_result(search, out_dir, data)
    return data


def stop_on_sigint(stop):
    """While a search runs in the main thread, Ctrl-C asks it to stop after the current step.

    A second Ctrl-C interrupts at once. Returns a function that restores the previous handler.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if stop.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        stop.set()

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:
        return lambda: None
    return lambda: signal.signal(signal.SIGINT, previous)


# -- the result ---------------------------------------------------------------------------------
def result(search):
    """Everything a reader needs, as plain data (what ``result.json`` holds)."""
    weights = search.weights()
    genotype = derive.derive_genotype(weights, search.op_names, search.threshold())
    last = search.history["epochs"][-1] if search.history["epochs"] else {}
    config = search.config.to_dict()
    config["device"] = str(search.device)
    config["threads"] = search.threads
    return {
        "format": RESULT_FORMAT,
        "status": search.status,
        "message": search.message,
        "config": config,
        "data": search.data_name,
        "environment": repro.environment(search.device),
        "ops": search.op_names,
        "alphas": search.alphas(),
        "weights": weights,
        "genotype": genotype,
        "skip_share": derive.skip_share(weights["normal"], search.op_names),
        "op_shares": derive.op_shares(weights["normal"], search.op_names),
        "genotype_skips": derive.genotype_skips(genotype["normal"]),
        "epochs_done": search.epoch,
        "steps_done": search.step,
        # the ranks of a data-parallel search (distributed); [first step, ranks] of each stretch
        "world_size": search.replicas.world_size,
        "world_sizes": search.world_sizes,
        "valid_accuracy": last.get("valid_accuracy"),
        "valid_accuracy_raw": last.get("valid_accuracy_raw"),
        "seconds": round(search.seconds, 3),
        "history": search.history,
    }


def save_result(search, out_dir, data=None):
    """Write ``result.json``: ``data``, where the caller has built ``result(search)`` already."""
    if not search.replicas.writes:  # data-parallel: rank 0 writes
        return os.path.join(out_dir, RESULT)
    os.makedirs(out_dir, exist_ok=True)
    return atomic_write_json(os.path.join(out_dir, RESULT), data or result(search))


# -- the state ----------------------------------------------------------------------------------
def state_dict(search):
    """Everything needed to continue exactly: tensors and plain data only (safe to load).

    Data-parallel, a collective (every rank's generator states are gathered, ``rank_rng``)."""
    state = {
        "format": RESULT_FORMAT,
        "config": search.config.to_dict(),
        "model": search.model.state_dict(),
        "w_optimizer": search.w_optimizer.state_dict(),
        "a_optimizer": search.a_optimizer.state_dict(),
        "train_batches": search.train_batches.state_dict(),
        "valid_batches": search.valid_batches.state_dict(),
        "rng": repro.rng_state(),
        "progress": {"epoch": search.epoch, "step_in_epoch": search.step_in_epoch,
                     "step": search.step, "seconds": search.seconds, "sums": dict(search.sums),
                     "world_sizes": search.world_sizes},
        "history": search.history,
    }
    rank_rng = search.replicas.rng_states()
    if rank_rng is not None:
        state["rank_rng"] = rank_rng
    return state


def load_state_dict(search, state):
    """Continue ``search`` from a ``state_dict``; one of another configuration raises
    ``ConfigError``."""
    check_fits(search, state)
    # The batches first: they refuse a state drawn from other data before anything else changes.
    search.train_batches.load_state_dict(state["train_batches"])
    search.valid_batches.load_state_dict(state["valid_batches"])
    search.model.load_state_dict(state["model"])
    search.w_optimizer.load_state_dict(state["w_optimizer"])
    search.a_optimizer.load_state_dict(state["a_optimizer"])
    repro.set_rng_state(state["rng"])
    p = state["progress"]
    search.epoch, search.step_in_epoch, search.step = p["epoch"], p["step_in_epoch"], p["step"]
    search.seconds, search.sums = p["seconds"], dict(p["sums"])
    # data-parallel: each rank's own generators; with another number of ranks, fresh ones
    search.replicas.restore_rng(state.get("rank_rng"), search.config.seed, search.step)
    search.world_sizes = [list(stretch) for stretch in p.get("world_sizes", [[0, 1]])]
    if search.world_sizes[-1][1] != search.replicas.world_size:
        search.world_sizes.append([search.step, search.replicas.world_size])
    search.history = state["history"]
    # The schedules of the current epoch, and the noise settings, follow from the config.
    c = search.config
    search.model.set_noise(c.noise_lambda, c.noise_kind, c.noise_mean)
    if not search.done:
        lr = [g["lr"] for g in search.w_optimizer.param_groups]
        search.enter_epoch()
        if search.step_in_epoch:  # mid-epoch: keep the epoch's learning rate as it was
            for g, value in zip(search.w_optimizer.param_groups, lr):
                g["lr"] = value


def check_fits(search, state):
    """Refuse a state whose model does not fit ``search``, naming why, before anything is
    overwritten."""
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise ConfigError(f"the checkpoint lacks {', '.join(missing)}")
    saved, here = state["model"], search.model.state_dict()
    if not isinstance(saved, dict):
        raise ConfigError(f"the checkpoint's model is a {type(saved).__name__}, "
                          "not a dict of tensors")

    def shape(tensors, name):
        return tuple(getattr(tensors.get(name), "shape", ()))

    wrong = (sorted(set(saved) ^ set(here))
             or [name for name in here if shape(saved, name) != shape(here, name)])
    if not wrong:
        return
    name = wrong[0]
    detail = (f"{name} has shape {shape(saved, name)} there, {shape(here, name)} here"
              if name in saved and name in here else f"{name} is in only one of the two models")
    theirs, ours = state.get("config") or {}, search.config.to_dict()
    differ = [f"{key} {theirs[key]!r} there, {ours[key]!r} here" for key in ours
              if key in theirs and theirs[key] != ours[key]
              and key not in ("epochs", "device", "threads")]
    cause = (f"it is from another configuration ({'; '.join(differ)})" if differ
             else "its model does not match the configuration saved with it")
    raise ConfigError(f"the checkpoint does not fit this search: {cause}; {detail}")


# -- checkpoints on disk ------------------------------------------------------------------------
def save_checkpoint(search, out_dir):
    """Write ``out_dir/checkpoint.pt`` atomically (write, then rename); data-parallel, rank 0
    writes what all ranks gathered."""
    path = os.path.join(out_dir, CHECKPOINT)
    state = state_dict(search)
    if not search.replicas.writes:
        return path
    os.makedirs(out_dir, exist_ok=True)
    with _replacing(path) as tmp:
        torch.save(state, tmp)
    return path


def resume(search_class, out_dir, data=None, device=None, replicas=None):
    """Rebuild a ``search_class`` (``Search``) from ``out_dir/checkpoint.pt``, ready to run on
    (``replicas``: one rank of a data-parallel search, any number of ranks)."""
    state = load_checkpoint(os.path.join(out_dir, CHECKPOINT))
    try:
        config = SearchConfig.from_dict(state["config"])
        if device is not None:
            config = config.replace(device=device)
        search = search_class(config, data=data, replicas=replicas)
        load_state_dict(search, state)
    except ConfigError as error:
        raise ConfigError(f"cannot resume from {out_dir!r}: {error}") from None
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as error:
        raise ConfigError(f"checkpoint in {out_dir!r} does not fit its own configuration "
                          f"({type(error).__name__}: {' '.join(str(error).split())})") from None
    return search


def load_checkpoint(path):
    """Load a checkpoint safely (``weights_only=True``: tensors and plain data, never code)."""
    if not os.path.exists(path):
        raise ConfigError(f"no checkpoint at {path!r}")
    try:
        # A corrupt file can make torch warn too: the error below says it all.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's text advises weights_only=False: not for a student
        raise ConfigError(f"refused to load checkpoint {path!r}: it holds something other than "
                          "tensors and plain data (loading it could run code), or it is corrupt"
                          ) from None
    except Exception as error:  # truncated or corrupt
        text = str(error).strip()
        first = text.split(". ")[0].splitlines()[0] if text else type(error).__name__
        raise ConfigError(f"cannot load checkpoint {path!r}: the file is truncated or corrupt "
                          f"({first})") from None
    if not isinstance(state, dict) or state.get("format") != RESULT_FORMAT:
        raise ConfigError(f"{path!r} is not an ndarts_edu search checkpoint")
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing or not isinstance(state["config"], dict):
        raise ConfigError(f"checkpoint {path!r} is incomplete (missing or malformed: "
                          f"{', '.join(missing) or 'config'})")
    return state


# -- atomic writes ------------------------------------------------------------------------------
@contextlib.contextmanager
def _replacing(path):
    """Yield a temporary name to write; rename it to ``path`` when done, remove it on a failure."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:  # an error or a Ctrl-C mid-write: the old file stays whole, no stray file
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path, data):
    """Write ``data`` as JSON to ``path`` atomically (write, then rename)."""
    with _replacing(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, allow_nan=False)
    return path
