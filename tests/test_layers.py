"""The layers of gateway/ hold: read from the source (ast), so a new import that breaks them fails here.

- ``gateway.vocabulary`` is a leaf: it imports nothing of the project (no ``gateway``, no ``drivers``).
- ``gateway.detect`` says what it found: it imports nothing of ``gateway.alerts`` or ``gateway.respond``,
  not even through another module, and carries no text for the family (no CJK in its string literals).
- ``gateway.alerts`` (the record, replies, delivery) imports nothing of ``gateway.detect`` or
  ``gateway.respond``, not even through another module.
- ``gateway.respond`` is above both and may import either.

Every import counts, wherever it is written (inside a function, under ``TYPE_CHECKING``): a layer that
needs another at type-checking time depends on it all the same. Importing a module also runs its
packages' ``__init__``, so those count as imported too.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("gateway", "drivers")


@dataclass(frozen=True)
class Layer:
    package: str
    must_not_reach: tuple[str, ...]


LAYERS = (
    Layer("gateway.detect", ("gateway.alerts", "gateway.respond")),
    Layer("gateway.alerts", ("gateway.detect", "gateway.respond")),
)
LEAVES = ("gateway.vocabulary",)
TEXT_FREE = ("gateway.detect",)
CJK = re.compile("[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
"""CJK punctuation, ideographs and full-width forms (the ，（） of a Chinese sentence)."""


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _modules(root: Path, top: str) -> dict[str, ast.Module]:
    """Every module of the package ``top`` under ``root``, by dotted name (a package by its own name)."""
    found: dict[str, ast.Module] = {}
    for path in sorted((root / top).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return found


def _is_package(name: str, root: Path) -> bool:
    return (root / Path(*name.split(".")) / "__init__.py").is_file()


def _imports(name: str, tree: ast.Module, modules: dict[str, ast.Module], root: Path) -> set[str]:
    """The project modules ``name`` imports (written in it)."""
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name if _is_package(name, root) else name.rpartition(".")[0]
                base = ".".join(package.split(".")[: len(package.split(".")) - (node.level - 1)])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            targets.add(source)
            targets.update(f"{source}.{alias.name}" for alias in node.names
                           if f"{source}.{alias.name}" in modules)
    return {t for t in targets if t in modules or t.split(".")[0] in PROJECT} - {name}


def written_imports(root: Path) -> dict[str, set[str]]:
    """Each project module's imports, as written in it."""
    modules = {**_modules(root, "gateway")}
    if (root / "drivers").is_dir():
        modules.update(_modules(root, "drivers"))
    return {name: _imports(name, tree, modules, root) for name, tree in modules.items()}


def import_graph(root: Path) -> dict[str, set[str]]:
    """What importing each module runs: its written imports and its own package (whose ``__init__`` runs
    first)."""
    graph = written_imports(root)
    for name, targets in graph.items():
        parent = name.rpartition(".")[0]
        if parent:
            targets.add(parent)
    return graph


def _path_to(graph: dict[str, set[str]], start: str, forbidden: tuple[str, ...]) -> list[str] | None:
    """The shortest import chain from ``start`` to a module of ``forbidden``; None when there is none."""
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        if current != start and any(_within(current, f) for f in forbidden):
            chain = [current]
            while (previous := came_from[chain[-1]]) is not None:
                chain.append(previous)
            return chain[::-1]
        for nxt in sorted(graph.get(current, ())):
            if nxt not in came_from:
                came_from[nxt] = current
                queue.append(nxt)
    return None


def layer_violations(root: Path) -> list[str]:
    graph = import_graph(root)
    problems: list[str] = []
    for layer in LAYERS:
        for name in sorted(n for n in graph if _within(n, layer.package)):
            chain = _path_to(graph, name, layer.must_not_reach)
            if chain is not None:
                problems.append(" -> ".join(chain))
    written = written_imports(root)
    for leaf in LEAVES:
        problems.extend(f"{leaf} (a leaf) imports {target}" for target in sorted(written.get(leaf, ())))
    return problems


def text_violations(root: Path) -> list[str]:
    problems: list[str] = []
    for package in TEXT_FREE:
        top, _, _ = package.partition(".")
        for name, tree in _modules(root, top).items():
            if not _within(name, package):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and CJK.search(node.value):
                    problems.append(f"{name}:{node.lineno}: {node.value[:40]!r}")
    return problems


# -- the rules on this repository --------------------------------------------------------------------


def test_the_layers_of_gateway_hold() -> None:
    assert layer_violations(REPO) == []


def test_the_detectors_carry_no_text_for_the_family() -> None:
    assert text_violations(REPO) == []


def test_the_layers_named_here_exist() -> None:
    """A layer renamed or moved must not make its rules pass vacuously."""
    graph = import_graph(REPO)
    for package in (*(layer.package for layer in LAYERS), "gateway.respond", *LEAVES, *TEXT_FREE):
        assert package in graph, package
    assert {"gateway.respond.messages", "gateway.alerts.model", "gateway.detect.vitals"} <= set(graph)


# -- the rules can fail ------------------------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


CLEAN = {
    "gateway/__init__.py": "",
    "gateway/vocabulary.py": "from enum import StrEnum\n",
    "gateway/detect/__init__.py": "",
    "gateway/detect/vitals.py": "from gateway.vocabulary import AlertKind\nTEXT = 'Fever'\n",
    "gateway/alerts/__init__.py": "",
    "gateway/alerts/model.py": "from gateway.vocabulary import AlertKind\n",
    "gateway/respond/__init__.py": "",
    "gateway/respond/messages.py": "from gateway.alerts.model import Message\nfrom gateway.detect import vitals\n"
                                   "TEXT = '发热'\n",
    "gateway/hub.py": "from gateway.respond import messages\nfrom gateway.detect.vitals import TEXT\n",
}


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    root = _tree(tmp_path, CLEAN)
    assert layer_violations(root) == []
    assert text_violations(root) == []


@pytest.mark.parametrize(("change", "expected"), [
    ({"gateway/detect/vitals.py": "from gateway.alerts.model import Message\n"},
     "gateway.detect.vitals -> gateway.alerts.model"),
    ({"gateway/detect/vitals.py": "def late():\n    from gateway.respond import messages\n"},
     "gateway.detect.vitals -> gateway.respond"),
    ({"gateway/detect/vitals.py": "from ..alerts import model\n"},
     "gateway.detect.vitals -> gateway.alerts"),
    ({"gateway/alerts/model.py": "import gateway.detect.vitals\n"},
     "gateway.alerts.model -> gateway.detect"),
    ({"gateway/alerts/model.py": "from gateway import hub\n"},
     "gateway.alerts.model -> gateway.hub -> gateway.detect"),
    ({"gateway/detect/__init__.py": "from gateway.hub import x\n"},
     "gateway.detect -> gateway.hub -> gateway.respond"),
    ({"gateway/detect/__init__.py": "from gateway.hub import x\n"},
     "gateway.detect.vitals -> gateway.detect -> gateway.hub -> gateway.respond"),
    ({"gateway/vocabulary.py": "from gateway.errors import StoreError\n", "gateway/errors.py": ""},
     "gateway.vocabulary (a leaf) imports gateway.errors"),
    ({"gateway/vocabulary.py": "import drivers.model\n"},
     "gateway.vocabulary (a leaf) imports drivers.model"),
])
def test_a_broken_rule_is_reported(tmp_path: Path, change: dict[str, str], expected: str) -> None:
    root = _tree(tmp_path, {**CLEAN, **change})
    assert any(v.startswith(expected) for v in layer_violations(root)), layer_violations(root)


def test_chinese_text_in_a_detector_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**CLEAN, "gateway/detect/silence.py": "def f(d):\n    return f'设备 {d} 没有信号'\n"})
    assert text_violations(root) == ["gateway.detect.silence:2: '设备 '", "gateway.detect.silence:2: ' 没有信号'"]
