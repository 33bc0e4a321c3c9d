"""Built-in ``milan_scorers``: wPMI (MILAN's own ranking) and a CLIP-style image-text scorer."""

from __future__ import annotations

from typing import Any

from milan_plugin.hookspecs import hookimpl


@hookimpl(trylast=True)
def milan_scorers() -> list[Any]:
    from milan_plugin.scoring.clip import ClipScorer
    from milan_plugin.scoring.wpmi import WPMIScorer

    return [WPMIScorer(), ClipScorer()]
