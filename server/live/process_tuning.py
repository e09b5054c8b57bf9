"""Process-wide tuning of the native libraries a server or render process loads:
OpenBLAS's thread pool and glibc's heap (when big blocks get their own mappings, and
giving free memory back)."""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # mallopt parameter (glibc malloc.h)
MMAP_THRESHOLD_BYTES = 1 << 20


def limit_blas_threads(threads: int = 1) -> list[str]:
    """Cap the BLAS thread pools numpy/scipy loaded (OpenBLAS); returns the libraries set.

    Per-frame matmuls are small, and OpenBLAS helper threads busy-wait between them: with
    one session on this 2-core machine they burned 0.7 of a core doing nothing (measured).
    Sessions already run in parallel on the worker pool, so one BLAS thread is right.
    """
    done = []
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
    for path in sorted(libs):
        lib = ctypes.CDLL(path)
        for symbol in ("openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn(ctypes.c_int(threads))
                done.append(path)
                break
    return done


def fix_mmap_threshold(nbytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Have glibc's malloc give blocks of ``nbytes`` and more their own mappings, always
    (by default the threshold rises to the size of each such block freed, up to 32 MB,
    and the heap keeps them from then on); False where that cannot be set.

    For the server process, where encoders are made and dropped with sessions: 20
    sessions after 10 grew the test process by 24-33 MB with it, 31-37 MB without.
    1 MB is above every per-frame buffer at 512x512 (an I420 frame is 384 KB); at
    256 KB, a 512x512 tick that allocates bigger blocks per frame cost 4.9 instead of
    2.9 ms, which is why the render processes keep glibc's default.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(nbytes)))


def release_free_memory() -> bool:
    """Give the heap's free memory back to the system (glibc ``malloc_trim``); False
    where there is no glibc.

    Codec and frame buffers of a closed session are freed into the heap, and glibc keeps
    them there (its threshold for giving big blocks their own mappings rises as they
    are freed). Called when a session closes, not per frame; in the render processes it
    brought the growth over 20 sessions (after 3) from 39 to 28-32 MB.
    """
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(ctypes.c_size_t(0)))
    except (OSError, AttributeError):
        return False
