"""The one user-facing exception type."""


class RooflineError(Exception):
    """A user-facing error: the CLI prints `Error: <message>` and `Hint: <hint>` on stderr and exits with exit_code."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 1):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code
