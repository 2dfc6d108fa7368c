"""Keep freed memory in the process: the C allocator tuned so that a training loop's per-update
tensors are not handed back to the kernel and faulted in again at the next update.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves a request above its *mmap
threshold* (128 KiB at start, raised as such blocks are freed, up to 32 MiB) with a fresh ``mmap``
and unmaps it on free, and it gives the free top of its heap back to the kernel once that exceeds the
*trim threshold* (128 KiB). Either way the next update's tensor of the same size lands on pages the
kernel must map and zero again, one minor page fault per 4 KiB page. A training step allocates
the same activations and gradients every time, so this is paid every update: the seed-stacked SAC
update of 5 seeds at 128x128 (activations ``[10, 256, 128]``, 1.3 MB each) took ~3,100 page faults and
12.4 ms per update, against 1 fault and 9.5 ms with the allocator tuned (1.31x); one SAC agent at
256x256, 61 faults and 6.15 ms against 5.76 ms (1.07x) (2026-12-06, 1 thread,
``benchmarks/page_faults.py``; ``docs/benchmarks.md``, "Page faults: the allocator").

:func:`retain_freed_memory` sets the mmap threshold to its maximum (32 MiB: smaller blocks come from
the heap and are reused) and the trim threshold to 1 GiB (the heap is not shrunk under that much free
memory). The process keeps up to its peak heap mapped, as a caching allocator would (the GPU path's
already does). On a C library without glibc's ``mallopt`` nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
TRIM_THRESHOLD = 1 << 30

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Tune glibc's malloc as described above, once per process; True where it applied (glibc)."""
    global _applied
    if _applied is None:
        _applied = False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt): leave it
            return False
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
