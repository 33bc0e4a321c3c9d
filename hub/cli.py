"""``milan hub convert|push|pull|ls|fetch-original``: the Hub from the command line."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "hub", help="MILANNOTATIONS, annotation sets and weights on the Hugging Face Hub"
    )
    commands = parser.add_subparsers(dest="hub_command", metavar="HUB_COMMAND", required=True)

    convert = commands.add_parser("convert", help="convert original release zips into a Hub dataset folder")
    convert.add_argument(
        "zips", nargs="+", metavar="ZIP", help="<arch>-<dataset>.zip files of the original release"
    )
    convert.add_argument("--out", required=True, help="the dataset folder to create or add to")
    convert.add_argument(
        "--imagenet-root", help="your ImageNet copy: also store the ImageFolder paths of exemplars"
    )
    convert.add_argument(
        "--min-descriptions",
        type=int,
        default=1,
        help="drop units with fewer descriptions (the reference used 3)",
    )
    convert.add_argument("--license", default="other", help="licence named in the dataset card")
    convert.add_argument("--no-progress", action="store_true")
    convert.set_defaults(func=_convert)

    push = commands.add_parser("push", help="upload a folder with a card to a Hub repo (or a local folder)")
    push.add_argument("folder", metavar="DIR")
    push.add_argument("repo_id", metavar="REPO_ID")
    push.add_argument(
        "--repo-type", choices=("dataset", "model"), default=None, help="default: from the folder"
    )
    push.add_argument(
        "--dry-run", action="store_true", help="print the files and the card instead of sending"
    )
    push.add_argument("--private", action="store_true")
    push.add_argument("--revision", help="branch to push to (must exist); default main")
    push.set_defaults(func=_push)

    pull = commands.add_parser("pull", help="download a repo, MILANNOTATIONS key or describer into a folder")
    pull.add_argument(
        "name", metavar="REPO_ID_OR_KEY", help="repo id, MILANNOTATIONS key/grouping or milan:<group>"
    )
    pull.add_argument("--out", required=True, help="a new or empty folder")
    pull.add_argument(
        "--repo-type", choices=("dataset", "model"), default="dataset", help="for plain repo ids"
    )
    pull.add_argument("--revision")
    pull.set_defaults(func=_pull)

    listing = commands.add_parser("ls", help="list the registry: datasets, annotation sets, describers")
    listing.add_argument("--kind", choices=("milannotations", "annotation-set", "describer"))
    listing.set_defaults(func=_ls)

    fetch = commands.add_parser(
        "fetch-original",
        help="download an original milan-<group>.pth and convert it safely (needs the network)",
    )
    fetch.add_argument("name", help="milan:<group>, e.g. milan:base")
    fetch.add_argument("--out", required=True, help="folder for the converted checkpoint")
    fetch.add_argument("--sha256", help="expected digest of the .pth file")
    fetch.set_defaults(func=_fetch_original)


def _convert(args: argparse.Namespace) -> int:
    from milan_plugin.hub.convert import convert_release

    out = convert_release(
        args.zips,
        args.out,
        imagenet_root=args.imagenet_root,
        min_descriptions=args.min_descriptions,
        license=args.license,
        progress=not args.no_progress,
    )
    print(f"wrote {out}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from pathlib import Path

    from milan_plugin.hub.transfer import push_folder

    repo_type = args.repo_type or ("model" if (Path(args.folder) / "config.json").is_file() else "dataset")
    plan = push_folder(
        args.folder,
        args.repo_id,
        repo_type=repo_type,
        revision=args.revision,
        private=args.private,
        dry_run=args.dry_run,
    )
    if not args.dry_run:
        print(f"pushed {len(plan.files)} files to {args.repo_id}")
    return 0


def _pull(args: argparse.Namespace) -> int:
    from milan_plugin.hub.groupings import resolve_members
    from milan_plugin.hub.transfer import copy_snapshot, pull_folder

    from milan_plugin.errors import MilanError

    if args.name.startswith("milan:"):
        from milan_plugin.hub.weights import pull_describer

        source = pull_describer(args.name, revision=args.revision)
    else:
        try:
            members = resolve_members(args.name)
        except MilanError:
            members = None
        if members is not None:
            from milan_plugin.hub.milannotations import default_milannotations_repo

            repo, pinned = default_milannotations_repo()
            patterns = ["README.md", *(f"{member}/*" for member in members)]
            source = pull_folder(
                repo, repo_type="dataset", revision=args.revision or pinned, allow_patterns=patterns
            )
        else:
            source = pull_folder(args.name, repo_type=args.repo_type, revision=args.revision)
    print(f"wrote {copy_snapshot(source, args.out)}")
    return 0


def _ls(args: argparse.Namespace) -> int:
    from milan_plugin.hub.registry import list_registry

    for entry in list_registry(args.kind):
        details = f"  configs: {len(entry.configs)}" if entry.configs else ""
        if entry.model_fingerprint:
            layers = ", ".join(entry.layers) or "all"
            details += f"  model: {entry.model} [{entry.model_fingerprint}] layers: {layers}"
        print(f"{entry.kind:<15} {entry.name:<20} {entry.repo_id}@{entry.revision}{details}")
        if entry.description:
            print(f"{'':<15} {entry.description}")
    return 0


def _fetch_original(args: argparse.Namespace) -> int:
    import tempfile

    from milan_plugin.hub.weights import convert_original_checkpoint, download_original_checkpoint

    with tempfile.TemporaryDirectory(prefix="milan-original-") as workdir:
        path = download_original_checkpoint(args.name, workdir, sha256=args.sha256)
        out = convert_original_checkpoint(path, args.out)
    print(f"wrote {out}")
    return 0
