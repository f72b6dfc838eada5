"""
Discovery of subprotocol handler plugins and negotiation against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Iterable, Mapping, Sequence

from twisted.logger import Logger
from twisted.python.modules import getModule
from zope.interface.verify import verifyObject

from wsservice.interfaces import IHandlerFactory


class PluginConflict(Exception):
    """
    Two plugins claim the same subprotocol.
    """


def describe(factory: object) -> str:
    """
    Name a plugin by where it is defined: C{module.QualifiedName}.
    """
    module = getattr(factory, "__module__", "?")
    name = getattr(factory, "__qualname__", type(factory).__qualname__)
    return f"{module}.{name}"


def discoverPlugins(
    package: ModuleType | None = None, log: Logger | None = None,
    interface: Any = IHandlerFactory,
) -> list[Any]:
    """
    Import every module in the C{twisted.plugins} package (all its
    directories on C{sys.path}) and collect the objects providing
    C{interface} (L{IHandlerFactory} unless told otherwise).

    A module that fails to import is logged with its name and skipped, so one
    broken plugin cannot take the others down.  An object found in several
    modules (imported into more than one drop-in) is returned once.
    """
    log = log or Logger()
    if package is None:
        import twisted.plugins as package
    found: list[Any] = []
    seen: set[int] = set()
    for module in getModule(package.__name__).iterModules():
        try:
            loaded = module.load()
        except BaseException:
            log.failure(
                "plugin module {module} failed to import; its plugins are not served",
                module=module.name,
            )
            continue
        for value in vars(loaded).values():
            if id(value) in seen or not interface.providedBy(value):
                continue
            seen.add(id(value))
            found.append(value)
    return found


@dataclass(frozen=True)
class HandlerRegistry:
    """
    The handler factories this process serves, by subprotocol.
    """

    factories: Mapping[str, IHandlerFactory]

    @classmethod
    def fromPlugins(cls, plugins: Iterable[IHandlerFactory]) -> "HandlerRegistry":
        """
        Index C{plugins} by subprotocol.

        @raise PluginConflict: when two plugins claim one subprotocol.
        """
        factories: dict[str, IHandlerFactory] = {}
        for plugin in plugins:
            verifyObject(IHandlerFactory, plugin)
            name = plugin.subprotocol
            if name in factories:
                raise PluginConflict(
                    f"subprotocol {name!r} is claimed by both "
                    f"{describe(factories[name])} and {describe(plugin)}"
                )
            factories[name] = plugin
        return cls(dict(sorted(factories.items())))

    @property
    def names(self) -> list[str]:
        """
        The served subprotocols, sorted.
        """
        return list(self.factories)

    def select(
        self, offered: Sequence[str], default: str | None
    ) -> IHandlerFactory | None:
        """
        Pick the handler for a client's offer: the first subprotocol, in the
        client's order, that has a handler; C{default} when the client
        offered none; C{None} when nothing fits.
        """
        if not offered:
            return self.factories.get(default) if default else None
        for name in offered:
            if name in self.factories:
                return self.factories[name]
        return None
