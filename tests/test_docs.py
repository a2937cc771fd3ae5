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
                 'ndrsr-eval', 'ndrsr-convert', 'ndrsr-make-lmdb', 'ndrsr-check', 'ndrsr-export')


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


def test_every_benchmark_section_gives_its_command():
    """BENCHMARKS.md holds current figures with the commands that produced them: every section names one."""
    text = read('BENCHMARKS.md')
    sections = re.split(r'^## ', text, flags=re.M)[1:]
    assert len(sections) >= 5
    command = re.compile(r'(python3? |\.venv/bin/|bash )\S*(bench/|scripts/|ndrsr/|ndrsr-)')
    for section in sections:
        title = section.split('\n', 1)[0]
        assert command.search(section), f'BENCHMARKS.md, "{title}": no command that produced its figures'


def test_the_demo_options_build_the_networks_of_the_weights_they_fine_tune():
    """options/train_demo.yml fine-tunes the shipped model: its network options must load those weights exactly."""
    import torch
    from basicsr.archs import build_network
    opt = yaml.safe_load(read('options/train_demo.yml'))
    for net, key in (('network_g', 'pretrain_network_g'), ('network_degrad', 'pretrain_network_degrad')):
        weights = torch.load(os.path.join(ROOT, opt['path'][key]), map_location='cpu', weights_only=True)
        build_network(dict(opt[net])).load_state_dict(weights['params'], strict=True)
