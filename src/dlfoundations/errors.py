"""The one exception type for user mistakes: its message names the fix, and the CLI prints it
as a single line without a traceback."""


class UserError(Exception):
    """A mistake in the command line, the config or the environment that the user can fix."""


class RunFailed(RuntimeError):
    """An unexpected error of a run itself (not of its command line): the entry points wrap it in
    this so that it keeps its traceback instead of becoming a one-line command-line error."""
