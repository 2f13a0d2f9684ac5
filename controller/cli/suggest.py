"""A mistyped command: `p38 stauts` is answered with the closest command, not a usage dump.

Reads the commands from the parser itself (so a command added later is suggested too); does
no I/O beyond returning the line to print.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Sequence


def commands(parser: argparse.ArgumentParser) -> list[str]:
    """The parser's sub-command names, in the order they were added."""
    return [name for action in parser._actions  # argparse keeps them only there
            if isinstance(action, argparse._SubParsersAction) for name in action.choices]


def unknown_command(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """The line to print when the first word of `argv` is not a command (None when it is, or
    when there is no word: argparse answers those itself)."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    known = commands(parser)
    if word is None or word in known:
        return None
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if close:
        return f"unknown command {word!r}; did you mean {close[0]!r}?"
    return f"unknown command {word!r}; the commands are: {', '.join(known)}"
