"""The one exception type for user mistakes: its message names the fix, and the CLI prints it
as a single line without a traceback."""


class UserError(Exception):
    """A mistake in the command line, the config or the environment that the user can fix."""
