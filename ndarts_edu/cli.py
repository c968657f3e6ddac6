"""The command line: python -m ndarts_edu COMMAND [options].

Every command writes open formats (JSON) to --out. Bad input ends with one line on stderr and
exit status 2; a diverged search, a lost worker or a file that cannot be written with one line
and status 1, never a traceback. Ctrl-C stops a search after its current step and keeps a
checkpoint (search --resume DIR continues it), keeps the finished searches of compare, sweep and
ablations (the same command again continues them), and exits with status 130.
"""
import argparse
import difflib
import importlib.util
import os
import shutil
import sys
import threading
import time

from . import derive
from .errors import ConfigError, one_line
from .presets import PRESETS, preset_config, preset_noise
from .search import SearchConfig, SearchDiverged

COMMANDS = {
    "search": "one search: DARTS, or NoisyDARTS with --noise-lambda -> DIR/result.json",
    "compare": "DARTS (noise 0) against NoisyDARTS over seeds, side by side -> DIR/compare.json",
    "sweep": ("a grid of noise levels over seeds, the data behind the noise slider "
              "-> DIR/sweep.json"),
    "ablations": ("the paper's ablations (noise level, kind, mean, target; FairDARTS) "
                  "-> DIR/ablations.json"),
    "train": "train a derived cell from scratch -> DIR/train.json",
    "page": "the noise slider as one HTML page: no kernel, no network -> FILE",
}
EXAMPLES = """examples:
  python -m ndarts_edu search --noise-lambda 1.5 --seed 1 --out runs/noisy
  python -m ndarts_edu compare --seeds 0 1 2 3 4
  python -m ndarts_edu sweep
  python -m ndarts_edu ablations --seeds 0 1 2
  python -m ndarts_edu train --genotype runs/noisy
  python -m ndarts_edu page --out docs/noise_slider.html
python -m ndarts_edu COMMAND --help lists a command's options, each with its default."""


def _plural(count, word):
    """'1 epoch', '2 epochs', '2 searches'."""
    return (f"{count} {word}" if count == 1
            else f"{count} {word}{'es' if word.endswith(('s', 'ch')) else 's'}")


class Progress:
    """A one-line progress bar of one search on stderr (redrawn in place on a terminal, one line
    per epoch otherwise)."""

    def __init__(self, search):
        self.search = search
        self.tty = sys.stderr.isatty()
        self.started = time.perf_counter()
        self.last = 0.0

    def total(self):
        return self.search.config.epochs * self.search.steps_per_epoch

    def on_step(self, record):
        now = time.perf_counter()
        if self.tty and now - self.last > 0.2:
            self.last = now
            self._draw(record.get("train_loss"), end="\r")

    def on_epoch(self, record):
        self._draw(record["train_loss"], extra=f" skip_share {record['skip_share']:.2f}",
                   end="\r" if self.tty else "\n", epoch=record["epoch"])

    def close(self):
        if self.tty:
            sys.stderr.write("\n")

    def _draw(self, loss, extra="", end="\n", epoch=None):
        s = self.search
        done = s.step / max(self.total(), 1)
        bar = "#" * int(24 * done) + "-" * (24 - int(24 * done))
        # While an epoch runs it is the one shown (epoch 1 from the first step), not the ones done.
        epoch = epoch if epoch is not None else min(s.epoch + 1, s.config.epochs)
        sys.stderr.write(f"[{bar}] epoch {epoch}/{s.config.epochs} "
                         f"step {s.step}/{self.total()} loss {loss:.3f}{extra} "
                         f"{time.perf_counter() - self.started:5.1f}s   {end}")
        sys.stderr.flush()

    def run(self, **kwargs):
        try:
            return self.search.run(on_step=self.on_step, on_epoch=self.on_epoch, **kwargs)
        finally:
            self.close()


class Board:
    """The progress of many searches on stderr: which are running (and how far), which are done.

    A line as each search starts and ends. On a terminal one status line below them is redrawn in
    place (how many are done; each running search's epoch or step); elsewhere (a log file, CI) a
    line per epoch of each search instead. Events come from ``cluster.run_searches``, on a Dask
    client's thread too: one lock keeps the lines whole.
    """

    def __init__(self, todo, kept, total):
        self.todo, self.kept, self.total = todo, kept, total
        self.done, self.lost, self.running = 0, [], {}
        self.tty = sys.stderr.isatty()
        self.lock = threading.Lock()

    def event(self, index, event):
        with self.lock:
            kind = event["event"]
            label = event.get("label", "")
            if kind == "where":
                self._line(f"{_plural(self.todo, 'search')} to run, in {event['where']}"
                           + (f" ({_plural(event['workers'], 'worker')} connected)"
                              if event["where"] != "this process" else "")
                           + (f"; dashboard {event['dashboard']}" if event.get("dashboard")
                              else ""))
            elif kind == "started":
                self.running[index] = f"{label} starting"
                worker = f" on {event['worker']}" if event.get("worker") else ""
                self._line(f"started {label}{worker}")
            elif kind == "step":
                self.running[index] = f"{label} step {event['step']}/{event['steps']}"
            elif kind == "epoch":
                self.running[index] = f"{label} epoch {event['epoch']}/{event['epochs']}"
                if not self.tty:
                    self._line(f"  {label}: epoch {event['epoch']}/{event['epochs']} "
                               f"loss {event['loss']:.3f} skip_share {event['skip_share']:.2f} "
                               f"{event['seconds']:.0f}s")
            elif kind == "done":
                self.running.pop(index, None)
                self.done += 1
                self._line(f"done [{self.kept + self.done}/{self.total}] {label}: "
                           f"skip_share {event['skip_share']:.2f},"
                           f" {event['genotype_skips']} skips, "
                           f"accuracy {event['valid_accuracy']:.2f}, "
                           f"{event['seconds']:.0f} s"
                           + ("" if event["status"] == "finished" else " (diverged)"))
            elif kind == "lost":
                self.running.pop(index, None)
                self.lost.append(label)
                self._line(f"lost {label}: {event['error']}")
            self._status()

    def _line(self, text):
        sys.stderr.write(("\r\033[K" if self.tty else "") + text + "\n")
        sys.stderr.flush()

    def _status(self):
        if not self.tty:
            return
        text = (f"[{self.kept + self.done}/{self.total} done] running: "
                + (", ".join(self.running.values()) or "-"))
        width = shutil.get_terminal_size().columns - 1
        sys.stderr.write("\r\033[K" + (text if len(text) <= width else text[:width - 3] + "..."))
        sys.stderr.flush()

    def close(self):
        if self.tty:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


SETTINGS = ("space", "seed", "epochs", "device", "threads", "dataset", "data_dir", "image_size",
            "layers", "channels", "batch_size", "order", "noise_kind", "noise_mean", "noise_on",
            "noise_decay", "weighting")
"""The search settings that flags may set (each ``--name``, default ``None``: the preset's)."""

CIFAR_DATA_DIR = "data"  # the README's default folder for CIFAR-10


def _config_from(args, noise_lambda=None):
    overrides = {k: getattr(args, k, None) for k in SETTINGS}
    overrides["noise_lambda"] = (noise_lambda if noise_lambda is not None
                                 else getattr(args, "noise_lambda", None))
    config = preset_config(args.preset, **overrides)
    if config.dataset == "cifar10" and config.data_dir is None:
        config = config.replace(data_dir=CIFAR_DATA_DIR)
    return config.validate()  # before any search starts (or a cluster)


def _out_folder(path):
    """Create ``--out`` now, so that an unwritable one fails before any search, not after the
    first."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the --out folder {path!r} ({error.strerror})") from None
    return path


def cmd_search(args):
    from .distributed import from_environment

    # Under torchrun: this process is one rank of a data-parallel search (ndarts_edu.distributed).
    replicas = from_environment()
    try:
        return _search(args, replicas)
    finally:
        if replicas is not None:
            replicas.leave()


def _search(args, replicas):
    from .search import Search

    # data-parallel: every rank runs the search, rank 0 alone prints and writes
    say = print if replicas is None or replicas.writes else (lambda *a, **k: None)
    if args.resume:
        ignored = _ignored_by_resume(args)
        if ignored:
            raise ConfigError("--resume continues with the checkpoint's settings; only --epochs "
                              f"and --device may change, got {', '.join(ignored)}")
        search = Search.resume(args.resume, device=args.device, replicas=replicas)
        out = args.resume
        if args.epochs is not None:
            search.extend(args.epochs)
        if search.done:
            say(f"nothing ran: the search in {out} has finished its "
                f"{_plural(search.epoch, 'epoch')} (--epochs N, more than {search.epoch}, "
                "continues it)", file=sys.stderr)
            return 0
        if len(search.world_sizes) > 1 and search.world_sizes[-1][0] == search.step:
            before, now = search.world_sizes[-2][1], search.replicas.world_size
            say(f"note: the checkpoint was written by {_plural(before, 'rank')}, this run has "
                f"{now}: the weights, alpha, optimizers and batches continue, but batch norm "
                "normalises each rank's share and each rank draws its own noise, so the rest is "
                "not bit-identical to an uninterrupted run (result.json records world_sizes)",
                file=sys.stderr)
    else:
        search = Search(_config_from(args), replicas=replicas)
        out = _out_folder(args.out)
    c = search.config
    world = search.replicas.world_size
    ranks = (f", {world} ranks ({search.replicas.backend}, {c.batch_size // world} images of each "
             "batch per rank)" if replicas is not None else "")
    if args.preset == "paper" and search.device.type == "cpu":
        say("note: the paper preset is sized for a GPU; on a CPU one of its 50 epochs takes hours "
              "(try --preset cpu, or --device cuda on a GPU machine)", file=sys.stderr)
    say(f"search: {c.space} space, {c.layers} cells x {c.channels} channels, {c.dataset}, "
        f"noise_lambda={c.noise_lambda:g}, seed {c.seed}, {_plural(c.epochs, 'epoch')} on "
        f"{search.device} ({_plural(search.threads, 'thread')}){ranks}",
        file=sys.stderr)
    try:
        shown = Progress(search) if search.replicas.writes else search  # rank 0 shows progress
        result = shown.run(out_dir=out)
    except SearchDiverged as error:
        kept = (f"the last good checkpoint is {os.path.join(out, 'checkpoint.pt')}"
                if os.path.exists(os.path.join(out, "checkpoint.pt"))
                else "no epoch finished, so no checkpoint")
        raise SearchDiverged(f"{error} (the history is in {os.path.join(out, 'result.json')}; "
                             f"{kept})") from None
    say(f"{result['status']}: skip_share {result['skip_share']:.2f}, "
        f"{result['genotype_skips']} skips in the derived normal cell, supernet accuracy "
        f"{result['valid_accuracy'] or 0:.2f}, {result['seconds']:.1f} s -> "
        f"{os.path.join(out, 'result.json')}")
    try:
        say(f"as DARTS's genotypes.py: {derive.darts_genotype_string(result['genotype'])}")
    except ValueError:  # a FairDARTS cell without two ops per node has no DARTS spelling
        pass
    return 0 if result["status"] == "finished" else 130


def _ignored_by_resume(args):
    """The flags given with ``--resume`` that it would ignore (it keeps the checkpoint's
    settings)."""
    given = [name for name in SETTINGS + ("noise_lambda",) if getattr(args, name, None) is not None]
    given += [name for name, default in (("preset", "cpu"), ("out", "runs/search"))
              if getattr(args, name) != default]
    return ["--" + name.replace("_", "-") for name in given if name not in ("epochs", "device")]


# -- compare, sweep, ablations: many searches ------------------------------------------------------
def _fan_out(args, threads):
    """``(workers, cluster)`` from ``--workers`` and ``--cluster``: one worker per core by
    default."""
    from .cluster import check_workers, default_workers

    workers, cluster = check_workers(args.workers, args.cluster)
    has_dask = importlib.util.find_spec("distributed") is not None
    if cluster is not None or (workers or 1) > 1:
        if not has_dask:
            what = "--cluster" if cluster is not None else f"--workers {workers}"
            raise ConfigError(f"{what} runs the searches on Dask, which is not installed: "
                              "pip install 'dask[distributed]' (or --workers 1 runs them here, "
                              "one after another)")
        return workers, cluster
    if workers is None:
        workers = default_workers(threads)
        if workers > 1 and not has_dask:
            print("note: Dask is not installed (pip install 'dask[distributed]'), so the searches "
                  "run here, one after another", file=sys.stderr)
            workers = 1
    return workers, cluster


def _run_many(path, run):
    """Run a many-search command: plan, progress board, the exit status. ``run(on_plan,
    on_event)``."""
    board = [None]

    def on_plan(plan):  # the settings, the grid and the earlier file are checked: nothing ran yet
        _out_folder(os.path.dirname(path))
        if plan["kept"]:
            print(f"continuing {path}: {plan['kept']} of the {plan['total']} searches are done "
                  "there", file=sys.stderr)
        if plan["others"]:
            differ = f" ({'; '.join(plan['others_differ'][:3])})" if plan["others_differ"] else ""
            print(f"note: {path} also holds {plan['others']} other finished "
                  f"{'search' if plan['others'] == 1 else 'searches'}"
                  f"{differ}; they stay in the file", file=sys.stderr)
        board[0] = Board(plan["total"] - plan["kept"], plan["kept"], plan["total"])

    try:
        data = run(on_plan, lambda index, event: board[0].event(index, event))
    finally:
        if board[0] is not None:
            board[0].close()
    return data, board[0]


def _finish(board, done, total, path, show):
    """Print the table and the last line; the exit status: 0 all done, 1 searches lost, 130
    interrupted."""
    if done:
        print(show())
    print(f"{done} of {total} searches -> {path}")
    if done == total:
        return 0
    if board is not None and board.lost:
        print(f"error: {_plural(len(board.lost), 'search')} lost with "
              f"{'its' if len(board.lost) == 1 else 'their'} "
              f"worker ({', '.join(board.lost)}); run the same command again to run "
              f"{'it' if len(board.lost) == 1 else 'them'}", file=sys.stderr)
        return 1
    print(f"interrupted: the same command again continues {path}", file=sys.stderr)
    return 130


def _many(args, kind):
    from . import experiments

    default = ([0.0, preset_noise(args.preset)] if kind == "compare"
               else list(experiments.SWEEP_LAMBDAS))
    lambdas = args.noise_lambdas or default
    config = _config_from(args, noise_lambda=0.0)
    workers, cluster = _fan_out(args, config.threads)
    path = os.path.join(args.out, f"{kind}.json")
    common = dict(out_path=path, workers=workers, cluster=cluster)
    if kind == "compare":
        data, board = _run_many(path, lambda on_plan, on_event: experiments.compare(
            config, lambdas, args.seeds, on_plan=on_plan, on_event=on_event, **common))
        return _finish(board, len(data["runs"]), board.total, path,
                       lambda: experiments.format_table(data["runs"]))
    data, board = _run_many(path, lambda on_plan, on_event: experiments.sweep(
        config, lambdas, args.seeds, preset=args.preset, on_plan=on_plan, on_event=on_event,
        **common))
    asked = {(float(lam), int(seed)) for lam in lambdas for seed in args.seeds}
    done = len(asked & {(r["noise_lambda"], r["seed"]) for r in data["runs"]})
    return _finish(board, done, board.total, path, lambda: experiments.format_sweep(data))


def cmd_ablations(args):
    from . import ablations

    noise_lambda = args.noise_lambda if args.noise_lambda is not None else preset_noise(args.preset)
    config = _config_from(args, noise_lambda=0.0)  # run_ablations sets each variant's noise
    workers, cluster = _fan_out(args, config.threads)
    path = os.path.join(args.out, "ablations.json")
    data, board = _run_many(path, lambda on_plan, on_event: (
        ablations.run_ablations(config, noise_lambda, args.seeds, only=args.only, out_path=path,
                                preset=args.preset, on_plan=on_plan, on_event=on_event,
                                workers=workers, cluster=cluster)))
    asked = {(key, seed) for key in (args.only or [v["key"] for v in data["variants"]])
             for seed in args.seeds}
    done = len(asked & {(r["variant"], r["seed"]) for r in data["runs"]})
    status = _finish(board, done, len(asked), path, lambda: ablations.format_ablations(data))
    if status == 0:
        print(f"the notebooks read ndarts_edu/{ablations.SHIPPED_ABLATIONS}: copy {path} there "
              "to ship it")
    return status


# -- train -----------------------------------------------------------------------------------------
def _genotype_path(path):
    """A search's folder (as ``--resume`` takes) stands for its ``result.json``."""
    if os.path.isdir(path):
        inside = os.path.join(path, "result.json")
        if not os.path.isfile(inside):
            raise ConfigError(f"the folder {path!r} holds no result.json: give a search's --out "
                              "folder, its result.json, or a genotype JSON file")
        return inside
    return path


def cmd_train(args):
    from . import train
    from .runs import atomic_write_json

    genotype, search_config = train.read_genotype_file(_genotype_path(args.genotype))
    # A search's result.json carries its settings: the derived network gets the search's budget.
    budget = search_config or preset_config(args.preset).to_dict()
    if budget.get("dataset") == "cifar10" and budget.get("data_dir") is None:
        budget = {**budget, "data_dir": CIFAR_DATA_DIR}
    config = train.TrainConfig.from_search(budget, epochs=args.epochs, seed=args.seed,
                                           device=args.device or "auto", threads=args.threads)
    out = _out_folder(args.out)
    print(f"train: {config.layers} cells x {config.channels} channels on {config.dataset}, "
          f"{_plural(config.epochs, 'epoch')}, seed {config.seed}", file=sys.stderr)
    result = train.train_genotype(genotype, config, on_epoch=lambda r: print(
        f"epoch {r['epoch']}/{config.epochs} loss {r['train_loss']:.3f} "
        f"test accuracy {r['test_accuracy']:.3f} {r['seconds']:.1f}s", file=sys.stderr))
    path = atomic_write_json(os.path.join(out, "train.json"), result)
    accuracy = result["test_accuracy"]
    print(f"{result['status']}: test accuracy {accuracy or 0:.3f}, {result['params']} parameters, "
          f"{result['seconds']:.1f} s -> {path}")
    chance = 0.1 if config.dataset in ("digits", "cifar10") else None  # both have 10 classes
    if accuracy is not None and chance and accuracy < 2 * chance:
        print(f"note: {accuracy:.3f} is about chance level ({chance:.2f} for 10 classes): "
              f"{_plural(config.epochs, 'epoch')} is too short for this network to learn; "
              f"the search's own budget is {_plural(budget['epochs'], 'epoch')} "
              "(the default of --epochs)", file=sys.stderr)
    return 0 if result["status"] == "finished" else 130


# -- the parser ------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, but options are never abbreviated, and a mistake is one line on stderr that names
    the option meant where it can (the usage is in ``--help``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # --noise-lambda must not pass for --noise-lambdas
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self._unknown(parsed, extras)
        return parsed

    def _unknown(self, parsed, extras):
        """'error: compare has no option --noise-lambda; did you mean --noise-lambdas?'"""
        parser, name = self, self.prog
        for action in self._actions:
            if (isinstance(action, argparse._SubParsersAction)
                    and getattr(parsed, action.dest, None)):
                name = getattr(parsed, action.dest)
                parser = action.choices[name]
        options = [o for action in parser._actions for o in action.option_strings
                   if o.startswith("--")]
        for extra in extras:
            if extra.startswith("-"):
                given = extra.split("=")[0]
                close = difflib.get_close_matches(given, options, n=1, cutoff=0.6)
                parser.error(f"{name} has no option {given}"
                             + (f"; did you mean {close[0]}?" if close else ""))
        parser.error(f"unrecognized arguments: {' '.join(extras)}")


def _preset_default(key, show=None):
    """'the preset's: cpu 10, quick 2, paper 50' (or the one value all presets share)."""
    base = SearchConfig()
    values = {name: PRESETS[name]["config"].get(key, getattr(base, key)) for name in PRESETS}
    show = show or (lambda v: "torch's default" if v is None
                    else f"{v:g}" if isinstance(v, float) else str(v))
    if len(set(map(str, values.values()))) == 1:
        return f"default: {show(next(iter(values.values())))}"
    return "default: the preset's: " + ", ".join(f"{name} {show(v)}" for name, v in values.items())


def _add_settings(p):
    """The search settings, each defaulting to the preset's."""
    p.add_argument("--preset", default="cpu", help="named settings: " + "; ".join(
        f"{name}: {PRESETS[name]['description']}" for name in PRESETS) + " (default: cpu)")
    p.add_argument("--space",
                   help=f"search space: darts, darts7, s2 or s3 ({_preset_default('space')})")
    p.add_argument("--epochs", type=int, help=f"search epochs ({_preset_default('epochs')})")
    p.add_argument("--device",
                   help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps (default: auto)")
    p.add_argument("--threads", type=int, help="torch CPU threads of each search; results depend "
                   f"on it and record it ({_preset_default('threads')})")
    p.add_argument("--dataset", help="digits (embedded, no download), cifar10, or folder (your own "
                   f".npz) ({_preset_default('dataset')})")
    p.add_argument("--data-dir", help="folder of the data: for cifar10 the one that holds (or will "
                   "hold) cifar-10-batches-py, for folder the one with train.npz (default: data "
                   "for cifar10)")
    p.add_argument("--image-size", type=int, help="resize the images to this many pixels a side "
                   "(default: the data's own size)")
    p.add_argument("--layers", type=int,
                   help=f"cells of the supernet ({_preset_default('layers')})")
    p.add_argument("--channels", type=int,
                   help=f"channels of the first cell ({_preset_default('channels')})")
    p.add_argument("--batch-size", type=int,
                   help=f"images per batch ({_preset_default('batch_size')})")
    p.add_argument("--order", type=int, help=f"1 (first order) or 2 (unrolled, second order) "
                   f"({_preset_default('order')})")
    p.add_argument("--noise-kind",
                   help=f"gaussian, uniform or multiplicative ({_preset_default('noise_kind')})")
    p.add_argument("--noise-mean", type=float, help="mean of the noise relative to std(x); "
                   f"NoisyDARTS's is unbiased ({_preset_default('noise_mean')})")
    p.add_argument("--noise-on", help="skip (NoisyDARTS) or all (every op's output) "
                   f"({_preset_default('noise_on')})")
    p.add_argument("--noise-decay", help="none, or cosine (the noise fades to 0 over the epochs) "
                   f"({_preset_default('noise_decay')})")
    p.add_argument("--weighting", help="softmax (DARTS) or sigmoid (FairDARTS) "
                   f"({_preset_default('weighting')})")


def _add_fan_out(p):
    from .cluster import available_cores

    p.add_argument("--workers", type=int, help="searches side by side, each in a worker process of "
                   "a local Dask cluster; 1 runs them in this process, one after another "
                   f"(default: one per core, {available_cores()} here)")
    p.add_argument("--cluster", metavar="ADDRESS", help="a running Dask scheduler "
                   "(tcp://host:8786) whose workers run the searches, instead of a local cluster "
                   "(default: none)")


def cmd_page(args):
    """The noise slider as one HTML page (viz.noise_page): no kernel, no network."""
    from . import viz
    from .experiments import load_sweep

    path = viz.write_noise_page(args.out, load_sweep(args.sweep))
    size = path.stat().st_size / 1e6
    print(f"{path} ({size:.1f} MB, plotly.js inside): open it in any browser, offline")
    return 0


def build_parser():
    noise = ", ".join(f"{name} {PRESETS[name]['noise_lambda']:g}" for name in PRESETS)
    parser = _Parser(prog="python -m ndarts_edu",
                     description=__doc__.split("\n\n")[0].replace("\n", " ")
                     + "\n\n" + __doc__.split("\n\n")[1], epilog=EXAMPLES)
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")

    p = sub.add_parser("search", help=COMMANDS["search"], description=COMMANDS["search"])
    _add_settings(p)
    p.add_argument("--noise-lambda", type=float, help="noise std relative to std(x), 0 being "
                   f"plain DARTS (default: 0; the presets' NoisyDARTS levels: {noise})")
    p.add_argument("--seed", type=int, help="seeds every generator of the search (default: 0)")
    p.add_argument("--out", default="runs/search", help="folder for result.json and checkpoint.pt "
                   "(default: runs/search)")
    p.add_argument("--resume", metavar="DIR", help="continue the search checkpointed in DIR; only "
                   "--epochs and --device may change (default: start a new search)")
    p.set_defaults(func=cmd_search)

    from .experiments import ABLATION_SEEDS, COMPARE_SEEDS, SWEEP_LAMBDAS, SWEEP_SEEDS

    grids = {"compare": (f"0 and the preset's NoisyDARTS level: {noise}", COMPARE_SEEDS),
             "sweep": (" ".join(f"{lam:g}" for lam in SWEEP_LAMBDAS) + ", the shipped sweep's grid",
                       SWEEP_SEEDS)}
    for kind, (lambdas, seeds) in grids.items():
        p = sub.add_parser(kind, help=COMMANDS[kind], description=COMMANDS[kind])
        _add_settings(p)
        p.add_argument("--noise-lambdas", type=float, nargs="+", metavar="LAMBDA",
                       help=f"the noise levels, 0 being DARTS (default: {lambdas})")
        p.add_argument("--seeds", type=int, nargs="+", default=list(seeds), metavar="SEED",
                       help=f"one search per seed and level (default: {' '.join(map(str, seeds))})")
        p.add_argument("--out", default=f"runs/{kind}", help=f"folder for {kind}.json, written as "
                       "each search finishes; the same command again continues it "
                       f"(default: runs/{kind})")
        _add_fan_out(p)
        p.set_defaults(func=lambda args, kind=kind: _many(args, kind))

    p = sub.add_parser("ablations", help=COMMANDS["ablations"], description=COMMANDS["ablations"])
    p.add_argument("--preset", default="cpu",
                   help=f"named settings: {', '.join(PRESETS)} (default: cpu)")
    p.add_argument("--noise-lambda", type=float, help="the NoisyDARTS level the variants use "
                   f"(default: the preset's: {noise})")
    p.add_argument("--seeds", type=int, nargs="+", default=list(ABLATION_SEEDS),
                   metavar="SEED", help="one search per seed and variant (default: "
                   f"{' '.join(map(str, ABLATION_SEEDS))}, the shipped ablations')")
    p.add_argument("--only", nargs="+", metavar="VARIANT", help="darts, gaussian_half, gaussian, "
                   "gaussian_double, uniform, multiplicative, mean_plus, mean_minus, noise_all, "
                   "fairdarts (default: all)")
    p.add_argument("--epochs", type=int, help=f"search epochs ({_preset_default('epochs')})")
    p.add_argument("--device",
                   help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps (default: auto)")
    p.add_argument("--threads", type=int, help="torch CPU threads of each search; results depend "
                   f"on it and record it ({_preset_default('threads')})")
    p.add_argument("--out", default="runs/ablations", help="folder for ablations.json, written as "
                   "each search finishes; the same command again continues it "
                   "(default: runs/ablations)")
    _add_fan_out(p)
    p.set_defaults(func=cmd_ablations)

    p = sub.add_parser("train", help=COMMANDS["train"], description=COMMANDS["train"])
    p.add_argument("--genotype", required=True, metavar="PATH", help="a search's --out folder or "
                   "its result.json (they bring the search's settings), or a genotype JSON file "
                   "(required)")
    p.add_argument("--preset", default="cpu", help="the budget for a bare genotype file; a "
                   f"search's result brings its own ({', '.join(PRESETS)}; default: cpu)")
    p.add_argument("--epochs", type=int, help="training epochs (default: the search's)")
    p.add_argument("--seed", type=int, help="seeds the training (default: the search's)")
    p.add_argument("--device",
                   help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps (default: auto)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: the search's)")
    p.add_argument("--out", default="runs/train",
                   help="folder for train.json (default: runs/train)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("page", help=COMMANDS["page"], description=COMMANDS["page"])
    p.add_argument("--sweep", metavar="FILE",
                   help="a sweep.json (default: the sweep shipped with the package)")
    p.add_argument("--out", default="noise_slider.html", metavar="FILE",
                   help="the HTML file (default: noise_slider.html; never replaces another file)")
    p.set_defaults(func=cmd_page)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command != "search" and _under_torchrun():
            raise ConfigError(f"torchrun runs one search across devices (search); {args.command} "
                              "is not one search: start it with python -m ndarts_edu (--workers, "
                              "--cluster fan its searches out)")
        return args.func(args)
    except ConfigError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    except SearchDiverged as error:
        print(f"error: the search diverged: {one_line(error)}", file=sys.stderr)
        return 1
    except OSError as error:  # a file that cannot be written mid-run, a full disk
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _under_torchrun():
    from .distributed import from_environment

    return from_environment() is not None


