"Every third-party module the library imports is one of pyproject.toml's dependencies; what tests/, the notebooks and .ci/ import is declared too (the `dev` extra counts there)."
import ast, json, re, sys
import importlib.metadata as md
from pathlib import Path
import pytest
from conftest import ROOT

tomllib = pytest.importorskip('tomllib')  # Python 3.11+

def imported_modules(source: str) -> set:
    "Top-level names of the absolute imports in Python `source`, at any depth (function-level imports count)."
    mods = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import): mods |= {a.name.split('.')[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0: mods.add(node.module.split('.')[0])
    return mods

def notebook_sources(path) -> list:
    "The code cells of a notebook, without their shell (`!`) and magic (`%`) lines."
    cells = json.loads(Path(path).read_text())['cells']
    return ['\n'.join(l for l in ''.join(c['source']).splitlines() if not l.lstrip().startswith(('!', '%')))
            for c in cells if c['cell_type'] == 'code']

def canonical(name: str) -> str:
    "A distribution name as PEP 503 compares them."
    return re.sub(r'[-_.]+', '-', name).lower()

def declared(*extras) -> set:
    "Canonical names of pyproject.toml's dependencies and of its optional-dependency groups `extras`."
    project = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']
    reqs = project['dependencies'] + [r for e in extras for r in project['optional-dependencies'][e]]
    return {canonical(re.match(r'[A-Za-z0-9._-]+', r).group()) for r in reqs}

def undeclared(modules, allowed, local=()) -> dict:
    "Each third-party module of `modules` that no distribution in `allowed` provides: its installed distributions (None: none)."
    provides = md.packages_distributions()
    third_party = sorted(set(modules) - set(sys.stdlib_module_names) - {'medvlm', *local})
    return {m: provides.get(m) for m in third_party if not {canonical(d) for d in provides.get(m, [])} & allowed}

def test_the_check_finds_what_is_undeclared():
    mods = imported_modules("import os.path, numpy as np\nfrom yaml import safe_load\nfrom . import data\n"
                            "def f():\n    import not_installed_anywhere.sub")
    assert mods == {'os', 'numpy', 'yaml', 'not_installed_anywhere'}
    assert undeclared(mods, declared()) == {'yaml': ['PyYAML'], 'not_installed_anywhere': None}  # PyYAML is installed, not declared
    assert undeclared({'numpy', 'PIL', 'cv2'}, declared()) == {}  # import names differ from distribution names

def test_library_imports_are_dependencies():
    mods = set().union(*(imported_modules(p.read_text()) for p in (ROOT/'medvlm').glob('*.py')))
    assert {'torch', 'fastai', 'transformers'} <= mods
    missing = undeclared(mods, declared())
    assert not missing, f"medvlm imports these, and pyproject.toml's dependencies do not list them: {missing}"

def test_tests_notebooks_and_ci_imports_are_declared():
    scripts = [*(ROOT/'tests').glob('*.py'), *(ROOT/'.ci').glob('*.py')]
    notebooks = [p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith('_')]  # `_` files are scratch
    sources = [p.read_text() for p in scripts] + [s for nb in notebooks for s in notebook_sources(nb)]
    mods = set().union(*map(imported_modules, sources))
    assert {'pytest', 'nbdev'} <= mods
    missing = undeclared(mods, declared('dev'), local={p.stem for p in (ROOT/'tests').glob('*.py')})
    assert not missing, f"tests/, nbs/ or .ci/ import these, and neither the dependencies nor the dev extra list them: {missing}"

def medvlm_imports(path) -> tuple:
    "(modules of medvlm that `path` imports at its top level, those it imports inside functions or classes)."
    tree = ast.parse(Path(path).read_text())
    def targets(node):
        if isinstance(node, ast.ImportFrom) and node.level == 1: return {node.module.split('.')[0]} if node.module else {a.name for a in node.names}
        if isinstance(node, ast.ImportFrom) and (node.module or '').startswith('medvlm.'): return {node.module.split('.')[1]}
        if isinstance(node, ast.Import): return {a.name.split('.')[1] for a in node.names if a.name.startswith('medvlm.')}
        return set()
    top = set().union(*(targets(n) for n in tree.body))
    return top, set().union(*(targets(n) for n in ast.walk(tree))) - top

def test_no_import_circles_and_no_deferred_imports():
    "The library's modules import each other at the top, in one direction: no circle, and none hidden in a function."
    graph, deferred = {}, {}
    for f in sorted((ROOT/'medvlm').glob('*.py')):
        if f.name in ('__init__.py', '_modidx.py'): continue
        graph[f.stem], inner = medvlm_imports(f)
        if inner: deferred[f.stem] = sorted(inner)
    assert not deferred, f"imports of medvlm modules inside functions: {deferred}"
    done, path = set(), []
    def visit(m):
        assert m not in path, f"import circle: {' -> '.join(path[path.index(m):] + [m])}"
        if m in done: return
        path.append(m)
        for n in graph.get(m, ()): visit(n)
        path.pop(); done.add(m)
    for m in graph: visit(m)
