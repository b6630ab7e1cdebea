"""Tests for wsdaemon.allocator: glibc keeps freed memory for the next large message."""

from __future__ import annotations

import platform

import pytest

from wsdaemon import allocator
from wsdaemon.allocator import DEFAULT_CACHE_BYTES, keep_freed_memory

GLIBC = platform.libc_ver()[0] == "glibc"


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

    class NoMallopt:
        def __init__(self, name: object) -> None:
            pass

        def __getattr__(self, name: str) -> object:
            raise AttributeError(name)

    monkeypatch.setattr(allocator.ctypes, "CDLL", NoMallopt)
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
