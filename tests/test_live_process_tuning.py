"""server/live/process_tuning.py: the allocator settings reach glibc."""

from __future__ import annotations

from headcast.server.live.process_tuning import fix_mmap_threshold, release_free_memory


def test_the_allocator_settings_reach_glibc() -> None:
    assert fix_mmap_threshold()  # mallopt accepted the fixed threshold
    assert isinstance(release_free_memory(), bool)
