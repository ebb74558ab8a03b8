"""The one user-facing exception type."""


class RooflineError(Exception):
    """A user-facing error: the CLI prints `Error: <message>` and `Hint: <hint>` on stderr and exits with exit_code.

    The library speaks of its own arguments, never of command-line flags: `param` is the argument an error is
    about (e.g. "tp"), and the message then begins with that name ("tp must be >= 1, got 0", or "tp=3 does not
    divide ..."); other arguments a message or hint names are written in backquotes, alone or with a value
    (`device=cpu`). A front end shows them in its own terms (the CLI: --tp, --device cpu)."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 1, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code
        self.param = param
