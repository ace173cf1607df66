"""User-facing errors.

Anything a user can fix (a bad flag, a missing file, a malformed recipe) raises :class:`HgpruneError` with a one-line
message that names the file or key at fault. The CLI prints it on stderr and exits with status 2, without a traceback
unless ``--debug`` is given.
"""


class HgpruneError(Exception):
    """An error caused by user input; its message is shown to the user as is."""

    exit_code = 2


def user_message(exc: HgpruneError) -> str:
    """The one line to show for ``exc``. An error raised in a DataLoader worker comes back as a copy whose message
    wraps the worker's traceback ("Caught HgpruneError in DataLoader worker process 0. Original Traceback ...");
    its last line is the original message."""
    message = str(exc)
    if "\n" in message and "Original Traceback" in message:
        last = message.strip().splitlines()[-1]
        return last.split(": ", 1)[1] if last.startswith(("hgprune.errors.HgpruneError: ", "HgpruneError: ")) else last
    return message
