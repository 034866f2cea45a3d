"""The one command-line style of the tools besides ``attnlab-train``/``-eval`` (Hydra): ``key=value`` arguments,
plus bare paths where a tool takes them (``attnlab-features``, ``-predict``, ``-translate``, ``-average``, ``-report``).

A value is the rest of its argument, taken literally, so commas, apostrophes and ``=`` need no escaping;
quotes around a whole value are dropped, so Hydra-style ``text="a, b"`` works too.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

HELP_FLAGS = ("-h", "--help")
USAGE_ERROR = 2  # exit status of a bad command line (as argparse's)


def unquote(value: str) -> str:
    """``"a, b"`` or ``'a, b'`` -> ``a, b``; anything else unchanged."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_key_values(
    argv: Sequence[str],
    keys: Sequence[str],
    defaults: Mapping[str, str] | None = None,
    required: Sequence[str] = (),
    repeatable: Sequence[str] = (),
    positional: str | None = None,
) -> dict[str, Any]:
    """The values of ``key=value`` arguments over ``defaults``; a ``repeatable`` key maps to the list of its
    values (empty when absent), any other key to its one value (absent when neither given nor defaulted).
    With ``positional``, every other argument (a path, which may hold ``=`` too) is collected, in order, into
    the list under that name.

    Raises ValueError naming an argument that is not ``key=value`` with an allowed key (and the allowed keys)
    where no positionals are taken, a non-repeatable key given twice, and the ``required`` keys left out.
    """
    unknown = [key for key in [*(defaults or {}), *required, *repeatable] if key not in keys]
    if unknown:
        raise ValueError(f"defaults, required and repeatable keys must be among {list(keys)}, got {unknown}")
    values: dict[str, Any] = {**(defaults or {}), **{key: [] for key in repeatable}}
    if positional is not None:
        values[positional] = []
    given: set[str] = set()
    for argument in argv:
        key, sep, value = argument.partition("=")
        if (not sep or key not in keys) and positional is not None:
            values[positional].append(argument)
            continue
        if not sep or key not in keys:
            raise ValueError(f"unexpected argument {argument!r}; allowed keys: {', '.join(keys)}")
        if key in repeatable:
            values[key].append(unquote(value))
            continue
        if key in given:
            repeats = ", ".join(repeatable) or "no key"
            raise ValueError(f"{key}= given twice (again as {argument!r}); only {repeats} may repeat")
        given.add(key)
        values[key] = unquote(value)
    missing = [key for key in required if values.get(key) in (None, [])]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    return values


def positive_int(name: str, value: str) -> int:
    """``value`` as an int >= 1, or a ValueError naming ``name``."""
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class UsageError(SystemExit):
    """Ends the program with status ``USAGE_ERROR``; ``str()`` is the message (already printed on stderr)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.code = USAGE_ERROR


def run_main(prog: str, usage: str, command: Callable[[list[str]], None], argv: Sequence[str] | None = None) -> None:
    """Run ``command(argv)`` (``sys.argv[1:]`` by default) as a console script: ``-h``/``--help`` prints
    ``usage``; a ValueError or FileNotFoundError becomes ``prog: message`` and the usage on stderr, and exit
    status 2, without a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(argument in HELP_FLAGS for argument in argv):
        print(usage)
        return
    try:
        command(argv)
    except (ValueError, FileNotFoundError) as error:
        message = f"{prog}: {error}\n{usage}"
        print(message, file=sys.stderr)
        raise UsageError(message) from error
