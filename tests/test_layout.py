"""The package's layout holds: every module imports, the library never imports a tool, no import cycles.

Wings: the plugin (``ndrsr/archs``, ``ndrsr/data``, ``ndrsr/models``) and the
library (the modules at the package root) must not import the tools
(``ndrsr/cli``). Imports are read from the source with ``ast`` (module level and
inside functions alike); a ``if __name__ == '__main__':`` block is the module's
``python -m`` entry, not part of the library, and is skipped.
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


def _is_main_block(node: ast.AST) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == '__name__')


def imported_modules(name: str, path: str) -> Set[str]:
    """ndrsr modules that ``name`` imports anywhere except its ``__main__`` block (resolved to modules)."""
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
    found: Set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_main_block(node):
            return
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


@pytest.mark.parametrize('name', sorted(MODULES))
def test_every_module_imports(name):
    importlib.import_module(name)


def test_the_wings_are_there():
    """Plugin, library and tools are where the README's layout says."""
    for name in ('ndrsr.archs', 'ndrsr.data', 'ndrsr.models', 'ndrsr.weights', 'ndrsr.tiling', 'ndrsr.checkpoint',
                 'ndrsr.convert', 'ndrsr.compat', 'ndrsr.resume', 'ndrsr.data.sources', 'ndrsr.cli.common',
                 'ndrsr.cli.restore', 'ndrsr.cli.degrade', 'ndrsr.cli.evaluate', 'ndrsr.cli.convert',
                 'ndrsr.cli.make_lmdb', 'ndrsr.cli.check', 'ndrsr.inference', 'ndrsr.train', 'ndrsr.test'):
        assert name in MODULES, name


def test_library_and_plugin_never_import_the_tools():
    offenders = {name: sorted(m for m in deps if is_tool(m)) for name, deps in GRAPH.items() if not is_tool(name)}
    assert {k: v for k, v in offenders.items() if v} == {}


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
    assert 'ndrsr.convert' in GRAPH['ndrsr.weights'] and 'ndrsr.checkpoint' in GRAPH['ndrsr.convert']
    assert 'ndrsr.resume' in GRAPH['ndrsr.compat']  # imported inside a function
    assert 'ndrsr.data.sources' in GRAPH['ndrsr.data.mixed_degradation_dataset']  # relative
    assert 'ndrsr.cli.common' in GRAPH['ndrsr.cli.restore']
    assert 'ndrsr.cli.convert' not in GRAPH['ndrsr.convert']  # only in its __main__ block


@pytest.mark.parametrize('module', ['ndrsr.convert', 'ndrsr.data.make_lmdb', 'ndrsr.data.check'])
def test_python_m_commands_keep_working(module):
    """The library modules' python -m entries run their tools in ndrsr/cli."""
    import subprocess
    import sys
    from helpers_pipeline import REPO, env
    out = subprocess.run([sys.executable, '-m', module, '--help'], cwd=REPO, env=env(REPO), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f'usage: python -m {module}' in out.stdout
