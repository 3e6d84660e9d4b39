"""The shape of the house, checked: no import cycles, dependencies point down the layers, no block of
code copied between stages, and a pinned public API."""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import vibeset

SRC = Path(vibeset.__file__).parent
BASE = {"errors", "hashing", "files", "tables", "progress", "metrics", "calibration"}
NOUNS = {"taxonomy", "catalog", "judgements", "golden", "reviews", "interactions", "annotation", "shards", "artifacts",
         "runs", "workspace", "encoder"}
SURFACE = {"cli", "serve", "__main__"}


def module_name(path: Path, root: Path = SRC) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING" or (
        isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")


def imports(path: Path) -> set[str]:
    """Every vibeset module this file imports at any depth (lazy ones too), except under TYPE_CHECKING."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("vibeset"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.startswith("vibeset"):
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def graph() -> dict[str, set[str]]:
    """Module -> modules it imports; importing a.b.c also runs a.b's __init__ (but never the root's)."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        own_packages = {".".join(name.split(".")[:end]) for end in range(1, name.count(".") + 1)}
        for target in imports(path):
            parts = target.split(".")
            for end in range(2, len(parts) + 1):
                prefix = ".".join(parts[:end])  # a package this module lives in is imported already
                if prefix in modules and prefix != name and prefix not in own_packages:
                    targets.add(prefix)
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return found


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    if top in BASE:
        return 0
    if top in NOUNS:
        return 1
    if top == "pipeline":
        return 3
    if top in SURFACE:
        return 4
    return 2  # the stages: annotate, llm, iterate, distill, scale, retrieval, evaluation, annotators, report


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_dependencies_point_down_the_layers() -> None:
    upward = sorted(
        f"{source} -> {target}" for source, targets in graph().items() if source != "vibeset"
        for target in targets if target != "vibeset" and layer(target) > layer(source)
    )
    assert upward == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# -- copied blocks ------------------------------------------------------------------------------------
WINDOW = 6
_TRIVIAL = re.compile(r"^(\)|\]|\}|\),|\],|\},|else:|try:|finally:|pass|return|@.*|from .* import .*|import .*|\"\"\"|#.*)$")


def _normalised(path: Path) -> list[tuple[int, str]]:
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if text and not _TRIVIAL.match(text):
            lines.append((number, text))
    return lines


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def shared_blocks(root: Path) -> list[str]:
    """Windows of six meaningful lines that occur in two modules of different stages."""
    seen: dict[str, tuple[str, int]] = {}
    found = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        lines = _normalised(path)
        for start in range(len(lines) - WINDOW + 1):
            window = "\n".join(text for _, text in lines[start : start + WINDOW])
            key = hashlib.sha1(window.encode()).hexdigest()
            other = seen.setdefault(key, (module, lines[start][0]))
            if _stage(other[0]) != _stage(module):
                found.append(f"{other[0]}:{other[1]} == {module}:{lines[start][0]}")
    return found


def test_no_block_of_six_lines_is_shared_by_two_stages() -> None:
    assert shared_blocks(SRC) == []


def test_the_copy_finder_finds_a_copy(tmp_path: Path) -> None:
    body = "".join(f"    value_{i} = compute({i})\n" for i in range(7))
    for stage in ("alpha", "beta"):
        (tmp_path / "vibeset" / stage).mkdir(parents=True)
        (tmp_path / "vibeset" / stage / "x.py").write_text(f"def f():\n{body}")
    assert len(shared_blocks(tmp_path / "vibeset")) == 3  # 'def f():' and seven lines: three windows of six


# -- the public API -----------------------------------------------------------------------------------
PUBLIC = [
    "Annotator", "ArtifactError", "Artifact", "Artifacts", "Attribute", "BackendError", "Catalog", "ConfigError",
    "DataError", "GoldenSet", "LLMConfig", "LockedError", "NotFittedError", "Recommender", "Run", "STAGES", "Student",
    "Taxonomy", "UnknownAttributeError", "Video", "VibesetError", "Workspace", "ZeroShotAnnotator", "__version__",
    "artifacts_of", "create_app", "evaluate_all", "evaluate_specs", "get_run", "golden_split", "labels", "list_runs",
    "load_catalog", "load_index", "load_student", "load_taxonomy", "load_workspace", "parse_spec", "read_annotations",
    "run_pipeline", "run_stage", "taxonomy_in_use", "verdict", "video_text", "workspace_golden",
]


def test_the_public_api_is_pinned() -> None:
    assert sorted(vibeset.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(vibeset, name) is not None
    assert [stage.name for stage in vibeset.STAGES][:2] == ["golden", "embed"]
