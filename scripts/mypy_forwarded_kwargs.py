"""mypy plugin: check keyword arguments that launch / launch_ros constructors forward in ``**kwargs``.

``launch_ros.actions.Node(**kwargs)`` hands its unknown keywords to ``ExecuteProcess``, which hands
them to ``ExecuteLocal`` and on to ``Action``: to mypy the ``**kwargs`` accepts anything, so
``Node(..., respawn_max_retries=3)`` (Jazzy only) would pass a Humble check and raise TypeError on
the vehicle. For a constructor call of a launch / launch_ros class, this plugin replaces the
``**kwargs`` with the keyword arguments of the base classes' ``__init__`` along the MRO, as long as
each one forwards ``**kwargs`` (the launch classes all do), typed ``Any``. Used by
``scripts/check_static.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.nodes import ARG_NAMED_OPT, ARG_STAR, ARG_STAR2, FuncDef
from mypy.plugin import FunctionSigContext, Plugin
from mypy.types import AnyType, CallableType, Instance, TypeOfAny, get_proper_type

PACKAGES = ("launch.", "launch_ros.")


def _forwarded_names(cls: Instance) -> list[str] | None:
    """Keyword names accepted by the bases of ``cls`` through ``**kwargs`` (None: chain not resolvable)."""
    names: list[str] = []
    for base in cls.type.mro[1:]:
        if base.fullname == "builtins.object":
            break
        init = base.names.get("__init__")
        if init is None:
            continue  # this base inherits __init__: the next one in the MRO defines it
        if not isinstance(init.node, FuncDef):
            return None  # overloaded or decorated: leave the call to mypy as it is
        args = init.node.arguments[1:]
        names += [a.variable.name for a in args if a.kind not in (ARG_STAR, ARG_STAR2)]
        if all(a.kind != ARG_STAR2 for a in args):
            break  # this __init__ forwards nothing further
    return names


def _expand_kwargs(ctx: FunctionSigContext) -> CallableType:
    sig = ctx.default_signature
    ret = get_proper_type(sig.ret_type)
    if ARG_STAR2 not in sig.arg_kinds or not isinstance(ret, Instance):
        return sig
    forwarded = _forwarded_names(ret)
    if forwarded is None:
        return sig
    keep = [i for i, k in enumerate(sig.arg_kinds) if k != ARG_STAR2]
    own = {sig.arg_names[i] for i in keep}
    extra = [n for n in dict.fromkeys(forwarded) if n not in own]
    any_type = AnyType(TypeOfAny.implementation_artifact)
    return sig.copy_modified(
        arg_types=[sig.arg_types[i] for i in keep] + [any_type] * len(extra),
        arg_kinds=[sig.arg_kinds[i] for i in keep] + [ARG_NAMED_OPT] * len(extra),
        arg_names=[sig.arg_names[i] for i in keep] + extra,
    )


class ForwardedKwargsPlugin(Plugin):
    def get_function_signature_hook(
            self, fullname: str) -> Callable[[FunctionSigContext], CallableType] | None:
        return _expand_kwargs if fullname.startswith(PACKAGES) else None


def plugin(version: str) -> type[Plugin]:
    return ForwardedKwargsPlugin
