"""Writing files safely: moved to :mod:`atlas.atomic` (level 0), so that every room - the data caches, the
site writer, the store - uses the one implementation. These names stay importable from here."""
from ..atomic import (DISK_ERRORS, DiskError, atomic_folder, atomic_write, disk_error, disk_errors,  # noqa: F401
                      is_temp, pid_alive, writer_alive)

__all__ = ["DISK_ERRORS", "DiskError", "atomic_folder", "atomic_write", "disk_error", "disk_errors", "is_temp",
           "pid_alive", "writer_alive"]
