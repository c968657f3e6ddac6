"""The command line: ``python -m ndarts_edu {search,compare,sweep,train} ...``.

Every sub-command writes open formats (JSON) to ``--out``; bad input ends with one line on
stderr and exit status 2, a diverged search or a file that cannot be written with one line and
status 1, never a traceback; Ctrl-C stops a search after its current step and keeps a checkpoint
(``search --resume DIR`` continues it; the status is then 130).
"""
import argparse
import os
import sys
import time

from . import derive
from .errors import ConfigError
from .presets import PRESETS, preset_config, preset_noise
from .search import SearchDiverged


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, one line per epoch otherwise)."""

    def __init__(self, search, label=""):
        self.search, self.label = search, label
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
        self._draw(record["train_loss"], extra=f" skip {100 * record['skip_share']:.0f}%",
                   end="\r" if self.tty else "\n")

    def close(self):
        if self.tty:
            sys.stderr.write("\n")

    def _draw(self, loss, extra="", end="\n"):
        s = self.search
        done = s.step / max(self.total(), 1)
        bar = "#" * int(24 * done) + "-" * (24 - int(24 * done))
        sys.stderr.write(f"{self.label}[{bar}] epoch {s.epoch}/{s.config.epochs} step {s.step}/{self.total()} "
                         f"loss {loss:.3f}{extra} {time.perf_counter() - self.started:5.1f}s   {end}")
        sys.stderr.flush()

    def run(self, **kwargs):
        try:
            return self.search.run(on_step=self.on_step, on_epoch=self.on_epoch, **kwargs)
        finally:
            self.close()


SETTINGS = ("space", "seed", "epochs", "device", "threads", "dataset", "data_dir", "image_size", "layers", "channels",
            "batch_size", "order", "noise_kind", "noise_mean", "noise_on", "noise_decay", "weighting")
"""The search settings that flags may set (each ``--name``, default ``None``: the preset's)."""


def _config_from(args, noise_lambda=None):
    overrides = {k: getattr(args, k, None) for k in SETTINGS}
    overrides["noise_lambda"] = noise_lambda if noise_lambda is not None else getattr(args, "noise_lambda", None)
    return preset_config(args.preset, **overrides)


def cmd_search(args):
    from .search import Search

    if args.resume:
        ignored = _ignored_by_resume(args)
        if ignored:
            raise ConfigError(f"--resume continues with the checkpoint's settings; only --epochs and --device may "
                              f"change, got {', '.join(ignored)}")
        search = Search.resume(args.resume, device=args.device)
        out = args.resume
        if args.epochs is not None:
            search.extend(args.epochs)
    else:
        config = _config_from(args)
        if config.noise_lambda is None:
            config = config.replace(noise_lambda=0.0)
        search = Search(config)
        out = args.out
        try:  # an unwritable --out fails now, not after the first epoch
            os.makedirs(out, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"cannot create the --out folder {out!r} ({error.strerror})") from None
    c = search.config
    if args.preset == "paper" and search.device.type == "cpu":
        print("note: the paper preset is sized for a GPU; on a CPU one of its 50 epochs takes hours "
              "(try --preset cpu, or --device cuda on a GPU machine)", file=sys.stderr)
    print(f"search: {c.space} space, {c.layers} cells x {c.channels} channels, {c.dataset}, noise_lambda={c.noise_lambda}"
          f", seed {c.seed}, {c.epochs} epochs on {search.device} ({search.threads} threads)", file=sys.stderr)
    try:
        result = Progress(search).run(out_dir=out)
    except SearchDiverged as error:
        kept = (f"the last good checkpoint is {os.path.join(out, 'checkpoint.pt')}"
                if os.path.exists(os.path.join(out, "checkpoint.pt")) else "no epoch finished, so no checkpoint")
        raise SearchDiverged(f"{error} (the history is in {os.path.join(out, 'result.json')}; {kept})") from None
    print(f"{result['status']}: skip_share {result['skip_share']:.2f}, {result['genotype_skips']} skips in the "
          f"derived normal cell, supernet accuracy {result['valid_accuracy']}, {result['seconds']:.1f} s -> "
          f"{os.path.join(out, 'result.json')}")
    try:
        print(f"as DARTS's genotypes.py: {derive.darts_genotype_string(result['genotype'])}")
    except ValueError:  # a FairDARTS cell without two ops per node has no DARTS spelling
        pass
    return 0 if result["status"] == "finished" else 130


def _ignored_by_resume(args):
    """The flags given with ``--resume`` that it would ignore (it keeps the checkpoint's settings)."""
    given = [name for name in SETTINGS + ("noise_lambda",) if getattr(args, name, None) is not None]
    given += [name for name, default in (("preset", "cpu"), ("out", "runs/search")) if getattr(args, name) != default]
    return ["--" + name.replace("_", "-") for name in given if name not in ("epochs", "device")]


def _many(args, kind):
    from . import experiments

    lambdas = args.noise_lambdas or ([0.0, preset_noise(args.preset)] if kind == "compare" else
                                     [0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5])
    config = _config_from(args, noise_lambda=0.0)
    os.makedirs(args.out, exist_ok=True)
    total = len(lambdas) * len(args.seeds)
    path = os.path.join(args.out, f"{kind}.json")
    count = [len(experiments.kept_runs(kind, path, config, lambdas, args.seeds))]
    if count[0]:
        print(f"continuing {path}: {count[0]} of the {total} searches are done there", file=sys.stderr)

    def wrap(search):
        count[0] += 1
        label = f"[{count[0]}/{total}] lambda={search.config.noise_lambda:g} seed={search.config.seed} "
        return Progress(search, label).run()

    if kind == "compare":
        data = experiments.compare(config, lambdas, args.seeds, out_path=path, wrap=wrap)
        print(experiments.format_table(data["runs"]))
    else:
        data = experiments.sweep(config, lambdas, args.seeds, out_path=path, wrap=wrap, preset=args.preset)
        for row in experiments.sweep_summary(data):
            print(f"lambda {row['noise_lambda']:<5g} skip_share {row['skip_share_mean']:.2f} "
                  f"[{row['skip_share_min']:.2f}, {row['skip_share_max']:.2f}] accuracy {row['valid_accuracy_mean']:.3f}")
    done = len(data["runs"])
    print(f"{done} of {total} searches -> {path}")
    return 0 if done == total else 130


def cmd_train(args):
    from . import train
    from .search import atomic_write_json

    genotype, search_config = train.read_genotype_file(args.genotype)
    # A search's result.json carries its settings: the derived network gets the search's budget.
    config = train.TrainConfig.from_search(search_config or preset_config(args.preset), epochs=args.epochs, seed=args.seed,
                                           device=args.device or "auto", threads=args.threads)
    print(f"train: {config.layers} cells x {config.channels} channels on {config.dataset}, {config.epochs} epochs, "
          f"seed {config.seed}", file=sys.stderr)
    result = train.train_genotype(genotype, config, on_epoch=lambda r: print(
        f"epoch {r['epoch']}/{config.epochs} loss {r['train_loss']:.3f} test accuracy {r['test_accuracy']:.4f} "
        f"{r['seconds']:.1f}s", file=sys.stderr))
    os.makedirs(args.out, exist_ok=True)
    path = atomic_write_json(os.path.join(args.out, "train.json"), result)
    print(f"{result['status']}: test accuracy {result['test_accuracy']}, {result['params']} parameters, "
          f"{result['seconds']:.1f} s -> {path}")
    return 0 if result["status"] == "finished" else 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake in the arguments is one line on stderr (the usage is in ``--help``)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def cmd_ablations(args):
    from . import ablations

    noise_lambda = args.noise_lambda if args.noise_lambda is not None else preset_noise(args.preset)
    config = preset_config(args.preset, epochs=args.epochs, device=args.device, threads=args.threads)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "ablations.json")
    count = [0]

    def wrap(search):
        count[0] += 1
        c = search.config
        label = f"[{count[0]}] {c.weighting} {c.noise_kind} lambda={c.noise_lambda:g} mean={c.noise_mean:g} on={c.noise_on} seed={c.seed} "
        return Progress(search, label).run()

    data = ablations.run_ablations(config, noise_lambda, args.seeds, only=args.only, out_path=path, wrap=wrap,
                                   preset=args.preset)
    print(ablations.format_ablations(data))
    asked = {(key, seed) for key in (args.only or [v["key"] for v in data["variants"]]) for seed in args.seeds}
    done = asked & {(r["variant"], r["seed"]) for r in data["runs"]}
    total = len(asked)
    print(f"{len(done)} of {total} searches -> {path} (the notebooks read "
          f"ndarts_edu/{ablations.SHIPPED_ABLATIONS}: copy it there to ship it)")
    return 0 if len(done) == total else 130


def build_parser():
    parser = _Parser(prog="python -m ndarts_edu", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--preset", default="cpu", help=f"one of {', '.join(PRESETS)} (default: cpu)")
        p.add_argument("--space", help="search space: darts, darts7, s2, s3 (default: the preset's)")
        p.add_argument("--epochs", type=int)
        p.add_argument("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
        p.add_argument("--threads", type=int, help="torch CPU threads (results depend on it; recorded)")
        p.add_argument("--dataset", help="digits (embedded), cifar10, folder")
        p.add_argument("--data-dir", help="folder of the data (cifar10: holds cifar-10-batches-py; folder: train.npz)")
        p.add_argument("--image-size", type=int)
        p.add_argument("--layers", type=int)
        p.add_argument("--channels", type=int)
        p.add_argument("--batch-size", type=int)
        p.add_argument("--order", type=int, help="1 (first order) or 2 (unrolled, second order)")
        p.add_argument("--noise-kind", help="gaussian, uniform, multiplicative")
        p.add_argument("--noise-mean", type=float)
        p.add_argument("--noise-on", help="skip (NoisyDARTS) or all")
        p.add_argument("--noise-decay", help="none or cosine")
        p.add_argument("--weighting", help="softmax (DARTS) or sigmoid (FairDARTS)")

    p = sub.add_parser("search", help="run one search and write DIR/result.json")
    common(p)
    p.add_argument("--noise-lambda", type=float, help="noise std relative to std(x) (default 0: plain DARTS)")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", default="runs/search")
    p.add_argument("--resume", metavar="DIR", help="continue the search checkpointed in DIR")
    p.set_defaults(func=cmd_search)

    for kind, text in (("compare", "DARTS (noise 0) against NoisyDARTS over seeds, side by side"),
                       ("sweep", "a grid of noise levels over seeds (the data behind the noise slider)")):
        p = sub.add_parser(kind, help=text)
        common(p)
        p.add_argument("--noise-lambdas", type=float, nargs="+")
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
        p.add_argument("--out", default=f"runs/{kind}")
        p.set_defaults(func=lambda args, kind=kind: _many(args, kind))

    p = sub.add_parser("train", help="train a derived genotype from scratch and write DIR/train.json")
    p.add_argument("--genotype", required=True, metavar="FILE", help="a search's result.json or a genotype JSON")
    p.add_argument("--preset", default="cpu", help="budget for a bare genotype file (a result.json brings its own)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", default="runs/train")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("ablations", help="the paper's ablations (noise level, kind, mean, target; FairDARTS) over seeds")
    p.add_argument("--preset", default="cpu", help=f"one of {', '.join(PRESETS)} (default: cpu)")
    p.add_argument("--noise-lambda", type=float, help="the NoisyDARTS level the variants use (default: the preset's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--only", nargs="+", metavar="VARIANT", help="darts, gaussian_half, gaussian, gaussian_double, "
                   "uniform, multiplicative, mean_plus, mean_minus, noise_all, fairdarts (default: all)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    p.add_argument("--threads", type=int, help="torch CPU threads (results depend on it; recorded)")
    p.add_argument("--out", default="runs/ablations", help="writes DIR/ablations.json; a rerun continues it")
    p.set_defaults(func=cmd_ablations)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 2
    except SearchDiverged as error:
        print(f"error: the search diverged: {_one_line(error)}", file=sys.stderr)
        return 1
    except OSError as error:  # an --out that cannot be written, a full disk
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _one_line(error):
    return " ".join(str(error).split())
