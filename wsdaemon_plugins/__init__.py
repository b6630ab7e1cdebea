"""wsdaemon's own plugin package: handler and authenticator descriptors, found by wsdaemon alone.

A distribution adds a handler or an authenticator by shipping
``wsdaemon_plugins/<its_name>.py`` (with no ``__init__.py``: this one, shipped by
wsdaemon, makes every ``sys.path`` entry's ``wsdaemon_plugins/`` folder part of
the package, exactly as ``twisted/plugins/__init__.py`` does for Twisted's).
Unlike ``twisted/plugins/``, ``twist`` and ``twistd`` never import these modules
when they look for their subcommands, so a module here that fails to import is
reported by wsdaemon in one line instead of by Twisted in tracebacks.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__: list[str] = []  # the plugins are found by twisted.plugin.getPlugins, never imported by name
