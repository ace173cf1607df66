"""User-facing errors.

Anything a user can fix (a bad flag, a missing file, a malformed recipe) raises :class:`HgpruneError` with a one-line
message that names the file or key at fault. The CLI prints it on stderr and exits with status 2, without a traceback
unless ``--debug`` is given.
"""


class HgpruneError(Exception):
    """An error caused by user input; its message is shown to the user as is."""

    exit_code = 2
