"""The package's layering, read statically from every module's imports (function-local ones included).

- no import cycle between modules;
- what eval, embed, search, serve and the run folder build on (encode, embed, eval, search, serve, runs,
  models, data) never imports the trainer: a trained run is read through `clipit.runs`;
- nothing in the library imports the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import clipit

PACKAGE = Path(clipit.__file__).parent
# Modules that read trained runs (or lie below the trainer) and so must not import clipit.train
BELOW_TRAIN = (
    "clipit.encode",
    "clipit.embed",
    "clipit.embed_index",
    "clipit.eval",
    "clipit.search",
    "clipit.serve",
    "clipit.runs",
    "clipit.models",
    "clipit.data",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Every clipit module `path` imports: `from a.b import c` names a.b.c when that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imported_modules(path, name, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for root in sorted(graph):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_walk_sees_function_local_and_relative_imports(tmp_path):
    pkg = tmp_path / "clipit" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    source = pkg / "a.py"
    source.write_text("def f():\n    from clipit.sub import b\n    from . import c\n    import clipit.d\n")
    modules = {"clipit.sub.a": source, "clipit.sub.b": source, "clipit.sub.c": source, "clipit.d": source}
    found = imported_modules(source, "clipit.sub.a", modules)
    assert found == {"clipit.sub.b", "clipit.sub.c", "clipit.d"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_readers_of_runs_never_import_the_trainer():
    offenders = [
        f"{name} imports {target}"
        for name, targets in import_graph().items()
        if any(within(name, p) for p in BELOW_TRAIN)
        for target in sorted(targets)
        if within(target, "clipit.train")
    ]
    assert not offenders, offenders


def test_nothing_in_the_library_imports_the_cli():
    offenders = [
        f"{name} imports {target}"
        for name, targets in import_graph().items()
        if not within(name, "clipit.cli")
        for target in sorted(targets)
        if within(target, "clipit.cli")
    ]
    assert not offenders, offenders
