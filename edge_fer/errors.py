"""User-facing errors: the CLI prints their message on one line and exits with code 2."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad path, bad file, bad option). Never shown with a traceback."""

    exit_code = 2


class DataError(UserError):
    """A dataset on disk does not have the layout or content its adapter expects."""

    def __init__(self, message: str, path=None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}" + (f", line {line}" if line is not None else "") + ": "
        super().__init__(where + message)
        self.path = path
        self.line = line


def run_script(main) -> int:
    """The benchmark scripts' entry: a UserError (a missing or malformed file) is one 'error:' line and its exit
    code, as in the CLI, not a traceback."""
    import sys

    try:
        return int(main() or 0)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
