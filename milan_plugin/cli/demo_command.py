"""``milan demo``: the whole job on embedded defaults, offline, in a few minutes on a laptop CPU.

Two parts. First the synthetic concept world, where the right answer is known: exemplars of
planted neurons are computed by the engine and described by the shipped describer, and each
description is printed beside the neuron's ground truth. Then a real network: MobileNetV2 with
its ImageNet weights over real photos, with masked-exemplar pages to browse. The shipped
describer was trained on the synthetic world only, so on real neurons it can only speak that
world's vocabulary (colours, shapes, textures, text, relations); the demo says so.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REAL_LAYER = "features.14"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="describe neurons of embedded default models, offline")
    parser.add_argument("--out", default="out/demo", help="where exemplars, pages and tables go")
    parser.add_argument("--units", type=int, default=12, help="how many neurons to describe in each part")
    parser.add_argument("--describer", default="milan:demo", help="describer name, folder or repo id")
    parser.add_argument("--device", default=None, help="torch device (default: CPU)")
    parser.add_argument("--no-real", action="store_true", help="skip the MobileNetV2 part")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from milan_plugin.describe.loading import load_describer

    out = Path(args.out)
    describer = load_describer(args.describer, device=args.device)
    _synthetic_part(describer, out, args.units, args.device)
    if not args.no_real:
        _real_part(describer, out, args.units, args.device)
    print(f"\nEverything is under {out}/ (rerunning reuses the cached exemplars).")
    return 0


def _synthetic_part(describer, out: Path, count: int, device: str | None) -> None:
    from milan_plugin.exemplars.engine import compute_exemplars
    from milan_plugin.synth.dataset import LAYER, unit_plans, world_source
    from milan_plugin.synth.language import exact_match
    from milan_plugin.synth.planted import PlantedNeurons

    print("1. Planted neurons of the synthetic concept world (ground truth known)")
    # Held-out combinations of the default world, the one milan:demo was trained on: concepts it
    # knows, combined in ways it never saw. Only the picked units are planted, which keeps the
    # pass over the world's 6,000 scenes to a minute.
    picked = _spread([plan for plan in unit_plans(seed=0, size="default") if plan.split == "test"], count)
    exemplars = compute_exemplars(
        PlantedNeurons([plan.form for plan in picked], seed=0),
        [LAYER],
        world_source(seed=0, size="default"),
        cache_dir=out / "cache",
        device=device,
    )[LAYER]
    descriptions = describer.describe(exemplars, list(range(len(picked))))
    hits = 0
    print(f"   {'unit':>5}  {'ground truth (held-out combination)':<40} description")
    for plan, description in zip(picked, descriptions, strict=True):
        match = exact_match(description.text, plan.form)
        hits += match
        mark = "ok" if match else "--"
        print(f"   {plan.unit:>5}  {plan.descriptions[0]:<40} {mark} {description.text}")
    print(f"   exact concept match on these held-out neurons: {hits}/{len(picked)}")
    print("   (exceptions such as 'circles except red ones' can rarely be named from exemplars:")
    print("   see 'exemplar ceiling' in docs/synth.md)")


def _real_part(describer, out: Path, count: int, device: str | None) -> None:
    import torchvision

    from milan_plugin.assets import install_offline_weights, photo_folder
    from milan_plugin.exemplars.engine import compute_exemplars
    from milan_plugin.exemplars.viz import write_layer_viz

    print(f"\n2. MobileNetV2 (real ImageNet weights), layer {REAL_LAYER}, over real photos")
    install_offline_weights()
    model = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1").eval()
    folder = photo_folder()
    exemplars = compute_exemplars(
        model, [REAL_LAYER], f"folder:{folder}", cache_dir=out / "cache", device=device
    )[REAL_LAYER]
    units = list(range(min(count, len(exemplars))))
    descriptions = describer.describe(exemplars, units)
    for description in descriptions:
        keys = ", ".join(Path(key).stem for key in exemplars.keys[exemplars.row(description.unit)][:3])
        print(f"   unit {description.unit:>4}: {description.text:<40} top photos: {keys}")
    page = write_layer_viz(exemplars, out / "viz", units=units)
    print("   (the shipped describer knows only the synthetic world's words; train one on")
    print("   MILANNOTATIONS with `milan train --annotations base` for real descriptions)")
    print(f"   browse the masked exemplars: {page}")


def _spread(plans: list, count: int) -> list:
    """Up to ``count`` plans, round-robin over concept kinds so every kind is shown."""
    by_kind: dict[str, list] = {}
    for plan in plans:
        by_kind.setdefault(plan.form.kind, []).append(plan)
    picked: list = []
    while len(picked) < count and any(by_kind.values()):
        for group in by_kind.values():
            if group and len(picked) < count:
                picked.append(group.pop(0))
    return sorted(picked, key=lambda plan: plan.unit)
