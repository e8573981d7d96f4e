"""User-facing errors.

An ``EvalkitError`` is a mistake the user can fix (a bad config key, a missing file, a
malformed data row). The CLI prints its message as one line and exits with status 2,
without a traceback; anything else is a bug and keeps its traceback.
"""


class EvalkitError(Exception):
    """An error whose message alone tells the user what is wrong and how to fix it."""


class ConfigError(EvalkitError):
    """A config key or value is invalid."""


class DataError(EvalkitError):
    """A data file is missing or one of its rows is malformed."""
