"""Static file mounts (``[[static]]``): twisted.web's ``File``, confined to its directory.

Rules for this file:

* Nothing outside the mounted directory is ever served. ``..`` and anything
  with a "/" in one segment (``%2e%2e``, ``%2f`` arrive decoded) are refused
  by ``FilePath.child``; a symlink is followed only when its target lies
  inside the mounted directory, checked on the real path of every step.
* Directories are never listed: a directory answers with its ``index.html``
  (or ``index.htm``), or 404.
* Nothing is executed: no ``.rpy`` or other processors.
* Errors are ``twisted.web.pages`` pages (the ones ``File`` ships are deprecated).
* This module imports ``twisted.web.static``, which warns when imported in
  Twisted 26.10; the site imports it only when a mount is configured.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from twisted.web import pages
from twisted.web.resource import IResource

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # File's class-level error pages, DESIGN §4
    from twisted.web.static import File

_NOT_FOUND = pages.notFound("Not Found", "No such file.")
_FORBIDDEN = pages.forbidden("Forbidden", "This file cannot be read.")


class ConfinedFile(File):
    """A ``File`` that serves only what lies inside ``root`` (a real, symlink-free path)."""

    indexNames = ["index.html", "index.htm"]
    # Twisted documents these as any resource; mypy infers the deprecated defaults' classes.
    childNotFound = _NOT_FOUND  # type: ignore[assignment]
    forbidden = _FORBIDDEN  # type: ignore[assignment]

    def __init__(self, path: str, *args: Any, root: str | None = None, **kwargs: Any) -> None:
        super().__init__(path, *args, **kwargs)
        self.root = root if root is not None else os.path.realpath(path)

    def getChild(self, path: bytes, request: Any) -> IResource:
        """The child named ``path``, or 404 if it is missing, hidden behind "/" or NUL, or leads outside."""
        if b"\x00" in path:
            return _NOT_FOUND
        child = super().getChild(path, request)  # type: ignore[no-untyped-call]
        if isinstance(child, File) and not self.inside(child.path):
            return _NOT_FOUND
        return child  # type: ignore[no-any-return]

    def inside(self, path: str) -> bool:
        """Whether ``path``, with every symlink resolved, is the root or lies under it."""
        real = os.path.realpath(path)
        return real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)

    def createSimilarFile(self, path: str) -> ConfinedFile:
        """Children keep the same root and rules."""
        child = type(self)(path, self.defaultType, self.ignoredExts, self.registry, root=self.root)
        child.indexNames = list(self.indexNames)
        return child

    def directoryListing(self) -> IResource:
        """No listings: a directory without an index page is 404."""
        return _NOT_FOUND

    def render(self, request: Any) -> Any:
        """Serve the file, unless this very path leads outside (the mount root itself is checked too)."""
        if not self.inside(self.path):
            return _NOT_FOUND.render(request)
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        return super().render(request)  # type: ignore[no-untyped-call]


def static_directory(directory: str) -> ConfinedFile:
    """The resource serving ``directory`` (already checked to exist by the config)."""
    return ConfinedFile(directory)
