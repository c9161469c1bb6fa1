"""The `maskcls` command line: everything the studio does, headless.

One module per command group, each with `register(sub, parents)`; shared options come from parent parsers
(maskcls.cli.common). Building the parser imports no torch, so `--help`, `jobs list`, `submissions` and
`sweep status` answer at once; each command imports what it needs when it runs.
"""
from __future__ import annotations

import argparse
import os
import sys

from maskcls.cli import augment, bench, data, infer, runs, study, sweep, team, train
from maskcls.cli.common import Parents

GROUPS = (data, train, runs, infer, study, sweep, team, augment, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskcls", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    parents = Parents()
    for group in GROUPS:
        group.register(sub, parents)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from maskcls.common.jobfolder import Cancelled, error_text
    try:
        return int(args.func(args) or 0)
    except Cancelled as e:  # a cancel's SIGTERM or Ctrl-C: one line, no traceback
        print(f"maskcls {args.command}: {e}", file=sys.stderr)
        return 130 if str(e).startswith("Ctrl-C") else 143
    except BrokenPipeError:  # `maskcls ... | head`: the reader had enough; nothing to say, as other tools do
        try:
            sys.stdout = open(os.devnull, "w")  # Python's flush at exit would raise again
        except OSError:
            pass
        return 141
    except KeyboardInterrupt:
        print(f"maskcls {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except (ValueError, KeyError, OSError) as e:
        print(f"maskcls {args.command}: error: {error_text(e) if isinstance(e, OSError) else e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
