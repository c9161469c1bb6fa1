"""What a terminal user sees while long work runs: one line per finished stage, and a tqdm bar within it.

Lines (epochs, summaries) go to stdout as they happen; bars go to stderr and only on a terminal, so a
log file or a pipe gets clean lines. `quiet` turns both off. Library functions take plain callbacks
(`progress(done, total)` or `progress(fraction, text)`); this module adapts them for the CLI.
"""
from __future__ import annotations

import sys

from tqdm import tqdm


class TerminalProgress:
    def __init__(self, quiet: bool = False, bars: bool | None = None):
        self.quiet = quiet
        self.bars = (not quiet) and (sys.stderr.isatty() if bars is None else bars)
        self._bar: tqdm | None = None
        self._desc = ""

    def line(self, text: str) -> None:
        """A line that stays (an epoch's figures): printed above any bar, flushed at once."""
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.clear()
        print(text, flush=True)
        if self._bar is not None:
            self._bar.refresh()

    def count(self, desc: str, unit: str = "it"):
        """A `progress(done, total)` callback that draws a bar named `desc`."""
        def update(done: int, total: int) -> None:
            self._draw(desc, unit, int(total), int(done))
        return update

    def fraction(self, desc: str):
        """A `progress(fraction, text)` callback: a 0-100 % bar whose postfix is the stage's text."""
        def update(fraction: float, text: str = "") -> None:
            self._draw(desc, "%", 100, int(round(100 * min(max(fraction, 0.0), 1.0))), text)
        return update

    def _draw(self, desc: str, unit: str, total: int, done: int, text: str = "") -> None:
        if not self.bars:
            return
        if self._bar is None or self._desc != desc or self._bar.total != total:
            self.close()
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)
            self._desc = desc
        self._bar.n = min(done, total)
        if text:
            self._bar.set_postfix_str(text[:60], refresh=False)
        self._bar.refresh()
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def eta_text(seconds: float) -> str:
    """'1 h 02 min', '3 min 05 s' or '42 s'."""
    s = int(round(max(seconds, 0)))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"
