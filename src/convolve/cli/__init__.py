"""The `convolve` command line (`convolve ...` or `python -m convolve ...`): argparse wiring and error reporting.

Every failure a user can cause (bad arguments, a missing data folder, a corrupt file, an unknown model) ends in
ONE line on stderr and a non-zero exit code; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence

from convolve.cli.parser import UsageError, build_parser

EXIT_USAGE, EXIT_FAILURE, EXIT_INTERRUPTED = 2, 1, 130


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, KeyError):  # str(KeyError) is the quoted key only
        text = f"missing key {text}"
    return text


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: object = None, line: str | None = None) -> None:
    print(f"convolve: warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the exit code (0 on success)."""
    parser = build_parser()
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    try:
        args = parser.parse_args(args_list)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        from convolve.cli.commands import COMMANDS

        with warnings.catch_warnings():
            if not debug:  # overflow warnings are reported once, as the non-finite loss error of `fit`
                warnings.simplefilter("ignore", RuntimeWarning)
                warnings.showwarning = _one_line_warning
            return COMMANDS[args.command](args)
    except UsageError as e:
        print(_one_line(e), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    except BrokenPipeError:  # `convolve models | head`: stop quietly (Python's documented recipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("convolve: interrupted (a training run keeps its last finished epoch: rerun it with --resume)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if debug:
            raise
        print(f"convolve: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_FAILURE


__all__ = ["main"]
