"""`milan bench nnsight` runs and prints the overhead ratio (tiny sizes; docs/benchmarks.md has real ones)."""

from __future__ import annotations

import re

from milan_plugin.cli import main


def test_bench_nnsight_prints_the_overhead_ratio(capsys):
    status = main(
        ["bench", "nnsight", "--images", "16", "--image-size", "32", "--batch-size", "8", "--repeats", "1"]
    )
    printed = capsys.readouterr().out
    assert status == 0
    assert re.search(r"overhead ratio \(nnsight / hooks\): \d+\.\d{3}", printed)
    assert "identical exemplars: True" in printed
