"""Which TFLite-Micro sources a set of ops needs, read from TFLite-Micro's own files.

* :func:`resolver_table` reads ``micro_mutable_op_resolver.h``: for every ``Add*`` method that
  registers a builtin op, the op (``BuiltinOperator_CONV_2D``) and its default registration
  function (``Register_CONV_2D``). The tflm engine's resolver table is tested against it.
* :func:`select_kernel_sources` picks, from the kernel sources TFLite-Micro's makefile lists
  for a build (after its specialization for ``OPTIMIZED_KERNEL_DIR``: ``cmsis_nn/conv.cc``
  replaces ``conv.cc``), the file that defines each op's registration function, then closes
  the set over the kernel headers those files include: ``kernels/X.h`` brings ``X.cc`` and
  ``X_common.cc`` (TFLite-Micro's layout: a kernel's shared code sits in ``X_common.cc``
  behind ``X.h``). The framework is always built whole; a missing kernel file shows up as an
  undefined symbol when the application links.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from pipeline.errors import CheckError, InputError

__all__ = ["RESOLVER_HEADER", "ResolverEntry", "resolver_table", "registration_sources", "select_kernel_sources"]

RESOLVER_HEADER = "tensorflow/lite/micro/micro_mutable_op_resolver.h"

_METHOD = re.compile(r"TfLiteStatus\s+(Add\w+)\s*\(([^{;]*)\)\s*\{(.*?)\n\s*\}", re.S)
_BUILTIN = re.compile(r"AddBuiltin\(\s*BuiltinOperator_(\w+)")
_REGISTRATION = re.compile(r"\b(?:tflite::)?(Register_\w+)\s*\(\s*\)")
_KERNEL_INCLUDE = re.compile(r'^\s*#\s*include\s+"tensorflow/lite/micro/kernels/([\w/]+)\.h"', re.M)


@dataclass(frozen=True)
class ResolverEntry:
    """One builtin op of ``MicroMutableOpResolver``.

    Attributes:
        method: the resolver method (``AddConv2D``).
        registration: its default registration function (``Register_CONV_2D``).
    """

    method: str
    registration: str


def resolver_table(header_text: str) -> dict[str, ResolverEntry]:
    """Builtin op -> resolver method and registration function, from the header's text.

    Args:
        header_text: ``micro_mutable_op_resolver.h``.

    Returns:
        ``{"CONV_2D": ResolverEntry("AddConv2D", "Register_CONV_2D"), ...}``; custom ops
        (``AddCustom`` callers such as ``AddEthosU``) are not in it.

    Raises:
        CheckError: no builtin method found (not the header this parser was written for), or
            two methods register the same op.
    """
    table: dict[str, ResolverEntry] = {}
    for match in _METHOD.finditer(header_text):
        method, arguments, body = match.groups()
        builtin = _BUILTIN.search(body)
        registration = _REGISTRATION.search(arguments) or _REGISTRATION.search(body)
        if builtin is None or registration is None:
            continue
        op = builtin.group(1)
        if op in table:
            raise CheckError(f"{RESOLVER_HEADER}: both {table[op].method} and {method} register {op}")
        table[op] = ResolverEntry(method, registration.group(1))
    if not table:
        raise CheckError(f"{RESOLVER_HEADER}: no Add* method registering a builtin op was found")
    return table


def _defines(text: str, function: str) -> bool:
    return re.search(rf"\b{re.escape(function)}\s*\(\s*\)\s*\{{", text) is not None


def registration_sources(kernel_sources: Iterable[str], read: Callable[[str], str], functions: Iterable[str]) -> dict[str, str]:
    """The kernel source that defines each registration function.

    Args:
        kernel_sources: the kernel sources of the build, as the makefile lists them.
        read: returns a source's text given its path.
        functions: ``Register_*`` names.

    Returns:
        function -> source path.

    Raises:
        CheckError: a function is defined by no source, or by more than one.
    """
    sources = list(kernel_sources)
    texts = {path: read(path) for path in sources}
    found = {}
    for function in functions:
        where = [path for path in sources if _defines(texts[path], function)]
        if len(where) != 1:
            what = "no kernel source defines" if not where else f"{len(where)} kernel sources ({', '.join(where)}) define"
            raise CheckError(f"{what} {function}() in this TFLite-Micro build")
        found[function] = where[0]
    return found


def select_kernel_sources(
    kernel_sources: Iterable[str], read: Callable[[str], str], ops: Iterable[str], table: dict[str, ResolverEntry]
) -> list[str]:
    """The kernel sources ``ops`` need: their registrations' files, closed over ``kernels/X.h`` includes.

    Args:
        kernel_sources: the build's kernel sources (``MICROLITE_CC_KERNEL_SRCS``), specialized.
        read: returns a source's text given its path.
        ops: builtin op names (``CONV_2D``).
        table: from :func:`resolver_table`.

    Returns:
        The selected sources, in the makefile's order.

    Raises:
        InputError: an op TFLite-Micro's resolver does not know.
        CheckError: a registration function defined by no source (or several).
    """
    sources = list(kernel_sources)
    wanted = sorted(set(ops))
    unknown = [op for op in wanted if op not in table]
    if unknown:
        raise InputError(f"TFLite-Micro's MicroMutableOpResolver has no builtin op(s) {', '.join(unknown)}")
    by_name: dict[str, list[str]] = {}
    for path in sources:
        by_name.setdefault(PurePosixPath(path).name, []).append(path)
    roots = registration_sources(sources, read, [table[op].registration for op in wanted])
    selected = set(roots.values())
    pending = sorted(selected)
    while pending:
        path = pending.pop()
        for header in _KERNEL_INCLUDE.findall(read(path)):
            stem = PurePosixPath(header).name
            for candidate in (f"{stem}.cc", f"{stem}_common.cc"):
                for match in by_name.get(candidate, []):
                    if match not in selected:
                        selected.add(match)
                        pending.append(match)
    return [path for path in sources if path in selected]
