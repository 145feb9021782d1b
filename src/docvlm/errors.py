"""User-facing errors.

Anything a user can cause (a bad config key, a missing image, an empty target) is raised as a
``DocVLMError`` subclass whose message names the file, sample id and field. The CLI prints the
message on one line and exits with status 2; programming errors keep their traceback.
"""


class DocVLMError(Exception):
    """Base class for errors caused by user input rather than by a bug."""


class ConfigError(DocVLMError):
    """An invalid configuration value, key or combination."""


class DataError(DocVLMError):
    """A sample, file or dataset that cannot be used as given."""


class ModelError(DocVLMError):
    """A model folder, hub id or family that cannot be loaded as asked."""


class Interrupted(DocVLMError):
    """The user stopped a command (Ctrl-C); the message says what was kept and how to go on."""


class OutputError(DocVLMError):
    """An output file or folder that cannot be written (read-only, full disk, not a folder)."""
