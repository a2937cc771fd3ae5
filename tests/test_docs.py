"""The README's commands run as written from a fresh clone; the docs' cross-references and figures hold."""
import importlib.util
import os
import re
import shlex
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ['README.md'] + [os.path.join('docs', n) for n in sorted(os.listdir(os.path.join(ROOT, 'docs')))
                        if n.endswith('.md')]
# What a fresh clone has only inside .venv: a bare call finds another interpreter (or nothing).
VENV_COMMANDS = ('python', 'python3', 'pip', 'pytest', 'torchrun', 'ruff', 'ndrsr-restore', 'ndrsr-degrade',
                 'ndrsr-eval')


def read(name: str) -> str:
    with open(os.path.join(ROOT, name), encoding='utf-8') as f:
        return f.read()


def commands(markdown: str):
    """Inline code spans and the lines of shell code blocks that look like commands."""
    blocks = re.findall(r'```(?:bash|sh|)\n(.*?)```', markdown, flags=re.S)
    text = re.sub(r'```.*?```', '', markdown, flags=re.S)
    for span in re.findall(r'`([^`\n]+)`', text):
        yield span
    for block in blocks:
        for line in block.splitlines():
            if line.strip() and not line.lstrip().startswith('#'):
                yield line.strip()


def first_word(command: str) -> str:
    words = [w for w in command.split() if '=' not in w.split('/')[0]]  # skip VAR=value prefixes
    return words[0] if words else ''


def test_readme_commands_run_from_a_fresh_clone():
    bare = [c for c in commands(read('README.md')) if first_word(c) in VENV_COMMANDS and len(c.split()) > 1]
    assert not bare, f'write these as .venv/bin/...: {bare}'


def test_readme_commands_name_things_that_exist():
    for command in commands(read('README.md')):
        if not first_word(command).startswith('.venv/bin/') or first_word(command) == '.venv/bin/':
            continue
        assert os.path.isfile(os.path.join(os.path.dirname(sys.executable), os.path.basename(first_word(command)))), \
            command  # the tests run in .venv: what .venv/bin/ holds is beside this interpreter
        words = shlex.split(command.split('(')[0])
        if '-m' in words:
            module = words[words.index('-m') + 1]
            assert importlib.util.find_spec(module) is not None, command
        for w in words[1:]:
            if re.fullmatch(r'(ndrsr|bench|scripts|options)/[\w/.-]+\.(py|yml|sh)', w):
                assert os.path.isfile(os.path.join(ROOT, w)), command


def test_references_to_benchmark_sections_exist():
    headings = [h.strip() for h in re.findall(r'^#+ (.*)$', read('BENCHMARKS.md'), flags=re.M)]
    for name in DOCS:
        for ref in re.findall(r'BENCHMARKS\.md,\s+"([^"]+)"', read(name)):
            assert any(h.startswith(ref) for h in headings), f'{name} points to BENCHMARKS.md, "{ref}": no such section'


def test_the_gpu_runs_are_not_denied():
    """BENCHMARKS.md has GPU runs of the inference tools: the guide must not say there were none."""
    assert '## GPU' in read('BENCHMARKS.md')
    text = ' '.join(read('docs/inference.md').split())
    assert 'ran on no GPU' not in text


def test_the_demo_network_size_in_benchmarks_is_the_demo_options():
    from ndrsr.archs import NDRRestore
    opt = dict(yaml.safe_load(read('options/train_demo.yml'))['network_g'])
    opt.pop('type')
    count = sum(p.numel() for p in NDRRestore(**opt).parameters())
    section = read('BENCHMARKS.md').split('## Embedded demo', 1)[1].split('\n## ', 1)[0]
    said = re.findall(r'NDR-Restore\s+dim \d+ \((\d+) k parameters', ' '.join(section.split()))
    assert said, 'the demo section no longer gives the network size'
    assert int(said[0]) == round(count / 1000), f'BENCHMARKS says {said[0]} k, options/train_demo.yml builds {count}'
