"""TF-free pieces every stage needs: errors, datasets, the run directory and manifest."""
from .errors import (BackendUnavailable, ConfigError, DataError, EdgesmithError, ParityError,
                     RunDirError)

__all__ = ["EdgesmithError", "DataError", "ConfigError", "RunDirError", "BackendUnavailable",
           "ParityError"]
