"""Atomic file writes (text, JSON, CSV tables, figures): a reader (or a crash) never sees a
half-written result.

Files get the permissions the process umask gives a newly created file (e.g. 0644 under umask
022, 0664 under 002), as ``open()`` would: the temporary file that ``mkstemp`` creates is 0600,
which, renamed into place, would hide results from the user's group on a shared cluster.
"""

import csv
import io
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # Elsewhere the only way to read it is to set it; the lock keeps our own threads from seeing
    # the temporary value (other threads of the process do not create files through this path).
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` for a temporary file next to ``path``, then rename it into place
    with the permissions the umask gives new files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def atomic_write_csv(
    path: str | os.PathLike, rows: Iterable[Mapping[str, Any] | Sequence[Any]], columns: Sequence[str]
) -> Path:
    """A CSV table: the header ``columns``, then one line per row (a mapping by column name, missing
    keys empty; or a sequence in column order). Every table the project writes goes through here."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns] if isinstance(row, Mapping) else list(row))
    return atomic_write_text(path, buffer.getvalue())


FIGURE_DPI = 200


def atomic_write_figure(fig: Any, path: str | os.PathLike) -> Path:
    """A matplotlib figure as ``path`` (PNG, :data:`FIGURE_DPI`) and a vector PDF beside it
    (``<name>.pdf``), each written atomically; the figure is closed. Every figure goes through here."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=FIGURE_DPI, format="png"))
        atomic_write(path.with_suffix(".pdf"), lambda tmp: fig.savefig(tmp, format="pdf"))
    finally:
        plt.close(fig)
    return path
