"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class EbedgeError(Exception):
    """Bad input or an unusable environment; the message is shown to the user as is."""
