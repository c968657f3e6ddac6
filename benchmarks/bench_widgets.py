"""How quickly the widgets answer: the slider, the live run's first redraw, Stop, a whole live run.

Goals (issue 4): a slider move redraws in under 0.2 s on the shipped sweep; a live run shows its
first redraw within 2 s of Run and ends within 1 s of Stop; a side-by-side live run of the default
preset ends in under 2 minutes on 2 cores. This prints the figures; it asserts nothing (timings
depend on the machine and on what else runs on it).

    python benchmarks/bench_widgets.py                      # shipped sweep, cpu preset
    python benchmarks/bench_widgets.py --sweep /tmp/sweep_quick/sweep.json --preset quick
"""
import argparse
import os
import statistics
import time

from ndarts_edu import widgets
from ndarts_edu.experiments import load_sweep


def bench_slider(sweep, moves, mode):
    explorer = widgets.NoiseSweepExplorer(sweep, mode=mode)
    grid = sweep["noise_lambdas"]
    seconds = []
    for i in range(moves):
        target = grid[(i + 1) % len(grid)]
        started = time.perf_counter()
        explorer.slider.value = target  # the observer redraws, as when the handle is dragged
        seconds.append(time.perf_counter() - started)
    print(f"slider move -> redrawn ({mode}): mean {1000 * statistics.mean(seconds):.1f} ms, "
          f"max {1000 * max(seconds):.1f} ms over {moves} moves on a grid of {len(grid)} levels")


def bench_live(preset, mode, threads, stop_after, whole):
    live = widgets.LiveComparison(preset, mode=mode, threads=threads)
    live.start()
    while "first_redraw" not in live.timings and live.running:
        time.sleep(0.01)
    t = live.timings
    print(f"live run ({preset}, {mode}, {live.threads} torch threads): first redraw "
          f"{t['first_redraw'] - t['started']:.2f} s after start")
    time.sleep(stop_after)
    live.stop()
    live.join()
    print(f"live run: ended {live.timings['ended'] - live.timings['stop_pressed']:.2f} s after Stop "
          f"(at step {live.progress.value} of {live.progress.max}; {live.live.redraws} redraws)")
    if whole:
        live.start()
        live.join()
        seconds = live.timings["ended"] - live.timings["started"]
        print(f"live side-by-side run, whole: {seconds:.1f} s, {live.live.redraws} redraws "
              f"({live.live.redraws / seconds:.1f} per s); {live.status.value}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweep", help="a sweep.json (default: the one shipped with the package)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--mode", default="widget", choices=["widget", "static"])
    parser.add_argument("--moves", type=int, default=50)
    parser.add_argument("--threads", type=int, help="torch threads of the live run (default: widgets.live_threads)")
    parser.add_argument("--stop-after", type=float, default=2.0, help="seconds of live run before Stop")
    parser.add_argument("--no-whole-run", action="store_true", help="skip the whole side-by-side run")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    bench_slider(load_sweep(args.sweep), args.moves, args.mode)
    bench_live(args.preset, args.mode, args.threads, args.stop_after, not args.no_whole_run)


if __name__ == "__main__":
    main()
