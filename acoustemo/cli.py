"""The `acoustemo` command: a thin layer over the library. Each subcommand lives in
`acoustemo/commands/<name>.py` with `add_arguments(parser)` and `run(args) -> int`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from acoustemo.version import __version__
from acoustemo.errors import AcoustEmoError

# name -> one-line help; the module acoustemo.commands.<name> implements it.
COMMANDS = {
    "prepare": "build a manifest from a media folder or the field's CSVs",
    "validate": "check a manifest and report every problem with line numbers",
    "extract": "extract and cache frozen-encoder features for a manifest",
    "augment": "add re-voiced copies of each clip (pitch, tempo, gain) to a training manifest",
    "train": "train AcoustEmo (LoRA + Q-Formers) on a manifest",
    "predict": "emotions and an explanation for a media file or a manifest",
    "evaluate": "Accuracy_S / Recall_S and the emotion-wheel metric",
    "export": "write a portable model folder from a trained run (no cache path, llm_dtype auto)",
    "bench": "the acoustic-cue benchmark: make data, run the ablation table",
    "serve": "a local web page to upload a video and see the answer",
}


def build_parser(available: dict) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acoustemo", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"acoustemo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in available.items():
        p = sub.add_parser(name.replace("_", "-"), help=COMMANDS[name], description=COMMANDS[name])
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _available_commands() -> dict:
    found = {}
    for name in COMMANDS:
        try:
            found[name] = importlib.import_module(f"acoustemo.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"acoustemo.commands.{name}":
                raise
    return found


def main(argv: list[str] | None = None) -> int:
    args = build_parser(_available_commands()).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except AcoustEmoError as e:
        if args.verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
