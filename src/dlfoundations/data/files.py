"""Open a torchvision dataset class and turn its failures into errors that name the fix."""

import pickle
import urllib.error
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from dlfoundations.errors import UserError

T = TypeVar("T")
_NOT_THERE = ("not found", "Error downloading")  # torchvision's words for missing files


def open_dataset(open_fn: Callable[[], T], name: str, folder: Path, files: str, alternative: str) -> T:
    """Call ``open_fn`` (a torchvision dataset constructor); on failure raise one :class:`UserError`
    saying where the files go (``folder``, ``files``) or that they are corrupt."""
    try:
        return open_fn()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
        raise _missing(name, folder, files, alternative) from err
    except PermissionError as err:  # an OSError, but no sign of damaged files
        raise UserError(
            f"{name}: no permission to write {err.filename or folder} ({err.strerror}); put the files there, "
            f"point paths.data_dir (or $DLF_DATA_DIR) at a writable directory, or {alternative}."
        ) from err
    except RuntimeError as err:
        if any(words in str(err) for words in _NOT_THERE):
            raise _missing(name, folder, files, alternative) from err
        raise _corrupt(name, folder, err, alternative) from err
    except (OSError, ValueError, AssertionError, IndexError, EOFError, pickle.UnpicklingError, zlib.error) as err:
        raise _corrupt(name, folder, err, alternative) from err


def _missing(name: str, folder: Path, files: str, alternative: str) -> UserError:
    return UserError(
        f"{name} is not in {folder} (or is incomplete) and could not be downloaded. Put {files} "
        f"there, set data.data_dir (or $DLF_DATA_DIR), or {alternative}."
    )


def _corrupt(name: str, folder: Path, err: Exception, alternative: str) -> UserError:
    return UserError(
        f"{name} files in {folder} are truncated or corrupt ({type(err).__name__}: {err}); "
        f"delete them to download again, or {alternative}."
    )
