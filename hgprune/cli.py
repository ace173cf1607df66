"""``hgprune`` command line: one table of sub-commands, each a module with ``add_arguments`` and ``main``.

Command modules are imported only when chosen, so ``hgprune --help`` stays fast. User errors
(:class:`~hgprune.errors.HgpruneError`) become one line on stderr and exit status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hgprune import __version__
from hgprune.errors import HgpruneError, user_message

# name → (module, one-line help). Adding a command = one line here + a module with add_arguments(parser), main(args).
COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "hgprune.commands.run",
        "run a pruning recipe: baseline → [prune → fine-tune → measure]* → export → report",
    ),
    "train": ("hgprune.commands.train", "train a stacked hourglass (accepts every flag of the seed's train_mpii.py)"),
    "evaluate": (
        "hgprune.commands.evaluate",
        "evaluate a checkpoint (accepts every flag of the seed's evaluate_mpii.py)",
    ),
    "profile": ("hgprune.commands.profile", "parameters, MACs (fvcore and thop), latency and memory of a model"),
    "convert": ("hgprune.commands.convert", "convert a seed / plain state-dict checkpoint to hgprune's format"),
    "export": ("hgprune.commands.export", "export a checkpoint to hgprune, TorchScript or ONNX with parity checks"),
    "predict": ("hgprune.commands.predict", "joints of people in images, folders, globs or videos (JSON, drawings)"),
    "latency": ("hgprune.commands.latency", "measure latency on a runtime (writes RUN/latency.json); calibrate one"),
    "report": ("hgprune.commands.report", "tables, Pareto plots and a Markdown report from run directories"),
    "sensitivity": ("hgprune.commands.sensitivity", "PCKh drop when pruning each part alone (no fine-tuning)"),
    "pckh": ("hgprune.commands.pckh", "score predictions in pos_pred_src layout against MPII ground truth"),
    "data": ("hgprune.commands.data", "dataset tools: inspect an MPII set-up, generate SynthPose"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line naming the command, exit status 2."""

    def error(self, message: str) -> None:  # noqa: D102
        raise HgpruneError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    return common


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported to add its arguments."""
    parser = _Parser(
        prog="hgprune", description="Structured pruning of Stacked Hourglass pose networks.", parents=[_common()]
    )
    parser.add_argument("--version", action="version", version=f"hgprune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text, parents=[_common()])
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(cmd)
            cmd.set_defaults(_main=module.main)
    return parser


def _chosen_command(argv: list[str]) -> str | None:
    for arg in argv:
        if arg in COMMANDS:
            return arg
        if not arg.startswith("-"):
            return None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser(_chosen_command(argv))
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        return int(args._main(args) or 0)
    except HgpruneError as exc:
        if debug:
            raise
        print(f"hgprune: error: {user_message(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print("hgprune: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
