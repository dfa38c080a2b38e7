"""Process-wide CPU settings that rnnkit's own commands apply (never on import).

glibc returns every freed block above its mmap threshold to the system, so a
training loop that allocates the same large activation buffers at every step
pays for fresh, zeroed pages at every step. On this project's 2-core machine
that doubles the time of ``torch.nn.LSTM`` at H=64 in some processes (11 ms
against 21 ms per step) and costs the time loop about a quarter. Keeping
freed memory in the heap removes those page faults; the price is that the
process keeps its peak memory, as it would with jemalloc or tcmalloc (which
Intel's PyTorch CPU guide recommends for the same reason).
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_applied = False


def keep_freed_memory(threshold: int = 1 << 30) -> bool:
    """Ask glibc to serve blocks below ``threshold`` bytes from the heap and keep them.

    Returns True when applied (glibc found), False elsewhere; safe to call twice.
    """
    global _applied
    if _applied:
        return True
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = (
        mallopt(_M_MMAP_THRESHOLD, int(threshold)) == 1
        and mallopt(_M_TRIM_THRESHOLD, int(threshold) * 2) == 1
    )
    _applied = ok
    return ok
