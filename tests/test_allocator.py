"""Tests for wsdaemon.allocator: glibc keeps freed memory for the next large message."""

from __future__ import annotations

import os
import platform

import pytest

from wsdaemon import allocator
from wsdaemon.allocator import DEFAULT_CACHE_BYTES, keep_freed_memory, release_freed_memory, resident_bytes

GLIBC = platform.libc_ver()[0] == "glibc"


class NoGlibcSymbols:
    """A C library like musl's or macOS's, as ``ctypes.CDLL(None)`` opens it: no mallopt, no malloc_trim."""

    def __init__(self, name: object) -> None:
        pass

    def __getattr__(self, name: str) -> object:
        raise AttributeError(name)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_thresholds_are_set_on_glibc() -> None:
    """On glibc both thresholds are accepted (mallopt returns 1 for each)."""
    assert keep_freed_memory(DEFAULT_CACHE_BYTES, environ={}) is True


def test_zero_leaves_the_allocator_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """0 keeps glibc's adaptive thresholds: mallopt is not called."""
    calls = spy_on_mallopt(monkeypatch)
    assert keep_freed_memory(0, environ={}) is False
    assert calls == []


def test_operator_tunables_win(monkeypatch: pytest.MonkeyPatch) -> None:
    """GLIBC_TUNABLES with a malloc setting means the operator chose: nothing is overridden."""
    calls = spy_on_mallopt(monkeypatch)
    assert keep_freed_memory(DEFAULT_CACHE_BYTES, environ={"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}) is False
    assert calls == []


def test_both_thresholds_get_the_configured_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """M_MMAP_THRESHOLD (-3) and M_TRIM_THRESHOLD (-1) are both set to allocator_cache_bytes."""
    calls = spy_on_mallopt(monkeypatch)
    assert keep_freed_memory(4 * 2**20, environ={"GLIBC_TUNABLES": "glibc.pthread.rseq=0"}) is True
    assert calls == [(-3, 4 * 2**20), (-1, 4 * 2**20)]


def test_a_libc_without_mallopt_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """musl or macOS: no mallopt symbol, nothing changes, no error."""
    monkeypatch.setattr(allocator.ctypes, "CDLL", NoGlibcSymbols)
    assert keep_freed_memory(DEFAULT_CACHE_BYTES, environ={}) is False


def spy_on_mallopt(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Replace libc with one whose mallopt records its arguments and succeeds."""
    calls: list[tuple[int, int]] = []

    class Mallopt:
        argtypes: object = None
        restype: object = None

        def __call__(self, parameter: int, value: int) -> int:
            calls.append((parameter, value))
            return 1

    class Libc:
        def __init__(self, name: object) -> None:
            self.mallopt = Mallopt()

    monkeypatch.setattr(allocator.ctypes, "CDLL", Libc)
    return calls


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_release_calls_malloc_trim_on_glibc() -> None:
    """On glibc the release is available and runs."""
    assert release_freed_memory() is True


def test_release_asks_for_every_free_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """malloc_trim(0): no padding kept at the top of the heap; the cache thresholds stay as they were."""
    calls: list[int] = []

    class Trim:
        argtypes: tuple = ()
        restype: object = None

        def __call__(self, pad: int) -> int:
            calls.append(pad)
            return 1

    class Libc:
        def __init__(self, name: object) -> None:
            self.malloc_trim = Trim()

    monkeypatch.setattr(allocator.ctypes, "CDLL", Libc)
    assert release_freed_memory() is True
    assert calls == [0]


def test_release_without_malloc_trim_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """musl or macOS: no malloc_trim symbol, False, no error."""
    monkeypatch.setattr(allocator.ctypes, "CDLL", NoGlibcSymbols)
    assert release_freed_memory() is False


def test_resident_bytes_reads_statm(tmp_path) -> None:
    """The second field of statm is resident pages; a missing or garbled file gives None."""
    statm = tmp_path / "statm"
    statm.write_text("1000 250 30 1 0 200 0\n")
    assert resident_bytes(str(statm)) == 250 * os.sysconf("SC_PAGE_SIZE")
    statm.write_text("garbled\n")
    assert resident_bytes(str(statm)) is None
    assert resident_bytes(str(tmp_path / "absent")) is None
