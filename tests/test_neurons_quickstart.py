"""docs/quickstart.md is executable: its Python blocks run, in order, as one script file.

Real MobileNetV2 ImageNet weights, real photos, real nnsight traces and the shipped demo describer;
the script must print a description of ``features.18[42]``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parent.parent / "docs" / "quickstart.md"


def quickstart_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", QUICKSTART.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 4, "the quickstart lost its code blocks"
    return "\n".join(blocks)


def demo_describer_problem() -> str | None:
    from milan_plugin.errors import MilanError
    from milan_plugin.plugins import get_describer

    try:
        get_describer("milan:demo")
    except MilanError as error:
        return str(error)
    return None


def test_quickstart_runs_and_describes_a_real_neuron(tmp_path, photo_folder, mobilenet_v2):
    problem = demo_describer_problem()
    if problem is not None:
        pytest.skip(f"the quickstart uses the shipped demo describer, which cannot be loaded: {problem}")
    script = tmp_path / "quickstart.py"
    script.write_text(quickstart_code())
    environment = {**os.environ, "MILAN_PHOTOS": str(photo_folder)}
    finished = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    printed = finished.stdout
    assert re.search(r"features\.18\[42\]: '.+'", printed), printed
    assert "1280 units in features.18" in printed
    assert "activation map (4, 7, 7)" in printed
    assert re.search(r"largest logit change from ablating it: \d", printed)
    assert (tmp_path / "milan-cache" / "exemplars").is_dir()
