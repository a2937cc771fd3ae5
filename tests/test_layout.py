"""The package's layout holds: every module imports, only the tools import the tools, no import cycles.

Wings: the plugin (``ndrsr/archs``, ``ndrsr/data``, ``ndrsr/models``,
``ndrsr/metrics``), the library (``ndrsr/lib``) and the BasicSR glue
(``ndrsr/glue``) must not import the tools (``ndrsr/cli``), not even in a
``__main__`` block. Imports are read from the source with ``ast`` (module level,
inside functions and in ``__main__`` blocks alike).
"""
import ast
import importlib
import os
from os import path as osp
from typing import Dict, List, Set

import pytest
from conftest import ROOT

PACKAGE = osp.join(ROOT, 'ndrsr')
TOOLS = 'ndrsr.cli'
PAGE = 'ndrsr.app'  # the web page: an optional extra (Gradio), used by nothing else


def module_files() -> Dict[str, str]:
    """{dotted module name: file} of every module of the package."""
    out = {}
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != '__pycache__' and osp.isfile(osp.join(folder, d, '__init__.py'))]
        for name in files:
            if name.endswith('.py'):
                rel = osp.relpath(osp.join(folder, name), ROOT)[:-3].replace(os.sep, '.')
                out[rel[:-len('.__init__')] if rel.endswith('.__init__') else rel] = osp.join(folder, name)
    return out


MODULES = module_files()


def imported_modules(name: str, path: str) -> Set[str]:
    """ndrsr modules that ``name`` imports anywhere (resolved to modules)."""
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
    found: Set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split('.')[0] == 'ndrsr')
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            if target.split('.')[0] == 'ndrsr':
                for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                    sub = f'{target}.{alias.name}'
                    found.add(sub if sub in MODULES else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(name)
    return found


GRAPH = {name: imported_modules(name, path) for name, path in MODULES.items()}


def is_tool(name: str) -> bool:
    return name == TOOLS or name.startswith(TOOLS + '.')


def is_page(name: str) -> bool:
    return name == PAGE or name.startswith(PAGE + '.')


@pytest.mark.parametrize('name', sorted(MODULES))
def test_every_module_imports(name):
    if is_page(name):
        pytest.importorskip('gradio', reason="the page's optional extra is not installed: pip install -e '.[app]'")
    importlib.import_module(name)


def test_the_wings_are_there():
    """Plugin, library and tools are where the README's layout says."""
    for name in ('ndrsr.archs', 'ndrsr.data', 'ndrsr.models', 'ndrsr.metrics', 'ndrsr.lib.weights',
                 'ndrsr.lib.tiling', 'ndrsr.lib.transfer', 'ndrsr.lib.checkpoint', 'ndrsr.lib.convert',
                 'ndrsr.lib.model_zoo', 'ndrsr.lib.maps', 'ndrsr.glue.compat', 'ndrsr.glue.resume', 'ndrsr.glue.entry',
                 'ndrsr.data.sources', 'ndrsr.cli.paths', 'ndrsr.cli.errors', 'ndrsr.cli.restore', 'ndrsr.cli.degrade',
                 'ndrsr.cli.evaluate', 'ndrsr.cli.convert', 'ndrsr.cli.make_lmdb', 'ndrsr.cli.check', 'ndrsr.train',
                 'ndrsr.test', 'ndrsr.lib.image_files', 'ndrsr.lib.image_ops', 'ndrsr.app.jobs', 'ndrsr.app.page',
                 'ndrsr.app.main'):
        assert name in MODULES, name


def test_the_package_root_holds_the_scripts_and_few_modules():
    """The root reads as one layer: ``__init__``, ``train.py``, ``test.py`` and at most five more modules."""
    root = sorted(n for n in MODULES if n.count('.') == 1 and not osp.isdir(osp.join(PACKAGE, n.split('.')[1])))
    assert {'ndrsr.train', 'ndrsr.test'} <= set(root) and len(root) <= 7, root


def test_library_and_plugin_never_import_the_tools():
    offenders = {name: sorted(m for m in deps if is_tool(m)) for name, deps in GRAPH.items() if not is_tool(name)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_page_imports_no_tool_and_nothing_imports_the_page():
    """The page calls the library as the tools do (never the tools), and Gradio stays inside ``ndrsr/app``."""
    assert not {name: deps for name, deps in GRAPH.items() if is_page(name) and any(is_tool(m) for m in deps)}
    assert sorted(name for name, deps in GRAPH.items() if not is_page(name) and any(is_page(m) for m in deps)) == []
    gradio_users = sorted(name for name, path in MODULES.items()
                          if any(isinstance(node, (ast.Import, ast.ImportFrom))
                                 and any((alias.name if isinstance(node, ast.Import) else node.module or '')
                                         .split('.')[0] == 'gradio' for alias in node.names)
                                 for node in ast.walk(ast.parse(open(path, encoding='utf-8').read()))))
    assert gradio_users and all(is_page(name) for name in gradio_users), gradio_users


def test_no_import_cycles():
    """Depth-first search for a cycle among the explicit imports (lazy ones inside functions included)."""
    state: Dict[str, int] = {}  # 1 on the stack, 2 done
    cycles: List[List[str]] = []

    def dfs(node: str, stack: List[str]) -> None:
        state[node] = 1
        for dep in sorted(GRAPH.get(node, ())):
            if dep not in GRAPH:
                continue
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                dfs(dep, stack + [dep])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            dfs(name, [name])
    assert cycles == []


def test_the_scan_sees_imports():
    """The checks above are not vacuous: the scan finds known edges, lazy and relative ones included."""
    assert 'ndrsr.lib.convert' in GRAPH['ndrsr.lib.weights'] and 'ndrsr.lib.checkpoint' in GRAPH['ndrsr.lib.convert']
    assert 'ndrsr.glue.resume' in GRAPH['ndrsr.glue.compat']  # imported inside a function
    assert 'ndrsr.data.sources' in GRAPH['ndrsr.data.mixed_degradation_dataset']  # relative
    assert 'ndrsr.glue.compat' in GRAPH['ndrsr']  # ``from .glue import compat``
    assert 'ndrsr.cli.paths' in GRAPH['ndrsr.cli.restore']


@pytest.mark.slow
@pytest.mark.parametrize('tool', ['convert', 'make_lmdb', 'check'])
def test_tools_run_as_console_scripts_and_python_m(tool):
    """``ndrsr-convert`` / ``ndrsr-make-lmdb`` / ``ndrsr-check`` (setup.py) and ``python -m ndrsr.cli.<tool>``."""
    import subprocess
    import sys
    from helpers_pipeline import REPO, env
    script = osp.join(osp.dirname(sys.executable), 'ndrsr-' + tool.replace('_', '-'))
    for cmd in ([script], [sys.executable, '-m', f'ndrsr.cli.{tool}']):
        out = subprocess.run(cmd + ['--help'], cwd=REPO, env=env(REPO), capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        assert out.stdout.startswith(f'usage: ndrsr-{tool.replace("_", "-")} '), out.stdout[:200]
