"""The one exception type for problems a user can cause and fix."""


class BinclsError(Exception):
    """A user-facing error: the message names the file or setting and says what to do.

    Pages show it with ``st.error``; the CLI prints it and exits non-zero, without a traceback.
    """
