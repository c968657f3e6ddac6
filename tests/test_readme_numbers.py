"""The README's numbers are those of the shipped data (tools/readme_numbers.py made them)."""
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "readme_numbers.py")


def test_the_readme_block_is_what_the_shipped_data_give():
    process = subprocess.run([sys.executable, TOOL, "--check"], capture_output=True, text=True)
    assert process.returncode == 0, process.stderr


def test_the_block_shows_each_noise_level_mean_skip_share_and_names_the_machine():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import readme_numbers

    block = readme_numbers.block()
    with open(readme_numbers.SWEEP) as f:
        sweep = json.load(f)
    assert sweep["environment"]["torch"] in block and "thread(s)" in block
    for lam in sweep["noise_lambdas"]:
        shares = [r["skip_share"] for r in sweep["runs"] if r["noise_lambda"] == lam]
        row = next(line for line in block.splitlines()
                   if line.startswith(f"| {'DARTS, 0' if lam == 0 else f'{lam:g}'}"))
        assert row.split("|")[2].strip().startswith(f"{statistics.mean(shares):.2f} ")
