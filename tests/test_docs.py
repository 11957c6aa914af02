"""The docs: every `python` block of README.md and docs/*.md runs, the README stays short, every page is in the site's nav,
the top-N and fold-in tables are rows of the results files, and the site builds offline in strict mode."""
import importlib.util, os, re, subprocess, sys
from dataclasses import dataclass, field
from pathlib import Path
import pytest, yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT/'docs'
PAGES = [ROOT/'README.md', *sorted(DOCS.glob('*.md'))]
README_MAX_LINES = 150
MARKS = {'realdata', 'slow'}  # what `<!-- test: ... -->` may say, as the pytest markers of setup.cfg

def under_ci():
    "As conftest.under_ci: CI=true (GitHub Actions, GitLab, .ci/run) and the like."
    return os.environ.get('CI', '').strip().lower() not in ('', '0', 'false', 'no')

@dataclass
class Block:
    "One ```python block: where it is, its code, and the HTML comment on the line before it (if any)."
    path: Path
    line: int  # the block's first code line, 1-based
    code: str
    marks: set = field(default_factory=set)
    not_run: str = ''  # why it is not run ('' if it runs)
    error: str = ''  # a marker this test does not understand

    @property
    def id(self): return f'{self.path.relative_to(ROOT)}:{self.line}'

def parse_marker(comment):
    "`<!-- test: realdata slow -->` -> ({'realdata', 'slow'}, '', ''); `<!-- not run: why -->` -> (set(), why, '')."
    m = re.fullmatch(r'<!--\s*(test|not run):\s*(.*?)\s*-->', comment)
    if not m: return set(), '', f'unknown comment before a python block: {comment!r}'
    if m[1] == 'not run': return set(), m[2] or 'no reason given', '' if m[2] else 'a `not run` marker must say why'
    marks = set(m[2].split())
    return marks, '', '' if marks and marks <= MARKS else f'unknown test marks {sorted(marks - MARKS) or "(none)"} in {comment!r}'

def code_blocks(path):
    "Every ```python block of the Markdown file `path`, with its marker."
    lines, i = path.read_text().splitlines(), 0
    while i < len(lines):
        if lines[i].startswith('```python'):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == '```'), len(lines))
            before = lines[i - 1].strip() if i else ''
            marks, why, err = parse_marker(before) if before.startswith('<!--') else (set(), '', '')
            yield Block(path, i + 2, '\n'.join(lines[i + 1:end]), marks, why, err)
            i = end
        i += 1

BLOCKS = [b for p in PAGES for b in code_blocks(p)]

def block_param(b):
    marks = [getattr(pytest.mark, m) for m in sorted(b.marks)]
    if b.not_run: marks.append(pytest.mark.skip(reason=f'{b.id} is not run: {b.not_run}'))
    return pytest.param(b, marks=marks, id=b.id)

@pytest.fixture(scope='module')
def docs_cache(tmp_path_factory):
    "One MOVIERECS_CACHE for every block: `default_learner()` trains once for all of them, and never in the real cache."
    return tmp_path_factory.mktemp('movierecs-cache')

@pytest.mark.parametrize('block', [block_param(b) for b in BLOCKS])
def test_code_block(block, request, tmp_path, monkeypatch, docs_cache):
    "The block runs, on its own, in an empty temporary folder (so nothing lands in the checkout)."
    assert not block.error, f'{block.id}: {block.error}'
    if 'realdata' in block.marks: request.getfixturevalue('ratings')  # skipped with the reason without ML-100k (CI: an error)
    monkeypatch.chdir(tmp_path)
    cache = request.getfixturevalue('default_cache') if 'realdata' in block.marks else docs_cache  # the defaults, trained once a run
    monkeypatch.setenv('MOVIERECS_CACHE', str(cache))
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    code = compile('\n' * (block.line - 1) + block.code, str(block.path), 'exec')  # tracebacks give the Markdown line
    try: exec(code, {'__name__': '__docs__'})
    finally:
        if 'matplotlib.pyplot' in sys.modules: sys.modules['matplotlib.pyplot'].close('all')

def test_every_page_has_blocks_and_markers_are_few():
    "The parser finds the blocks (a broken fence would hide them), and few are not run."
    assert len(BLOCKS) >= 10 and any(b.path.name == 'README.md' for b in BLOCKS)
    assert [b.id for b in BLOCKS if b.error] == []
    assert sum(bool(b.not_run) for b in BLOCKS) <= 3, [(b.id, b.not_run) for b in BLOCKS if b.not_run]

def test_readme_is_short_and_its_links_exist():
    lines = (ROOT/'README.md').read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f'README.md has {len(lines)} lines; move prose to docs/'
    links = re.findall(r'\]\(([^)#\s]+)[^)]*\)', '\n'.join(lines))
    local = [l for l in links if not re.match(r'[a-z]+:', l)]
    assert local and [l for l in local if not (ROOT/l).exists()] == []
    assert {p.name for p in DOCS.glob('*.md')} - {Path(l).name for l in local if l.startswith('docs/')} <= {'index.md'}

def nav_pages(nav):
    "Every page named in mkdocs.yml's nav, however nested."
    if isinstance(nav, str): return [nav]
    if isinstance(nav, dict): return [p for v in nav.values() for p in nav_pages(v)]
    return [p for v in nav for p in nav_pages(v)]

def test_every_page_is_in_the_nav():
    nav = nav_pages(yaml.safe_load((ROOT/'mkdocs.yml').read_text())['nav'])
    assert sorted(p.name for p in DOCS.glob('*.md') if p.name not in nav) == []
    assert [p for p in nav if not (DOCS/p).exists()] == []
    assert {f'notebooks/{p.name}' for p in (ROOT/'notebooks').glob('*.ipynb')} <= set(nav)

def test_topn_rows_are_the_table():
    "Every table row of docs/topn.md is a row of results/topn.md, character for character (was in test_ranking.py)."
    rows = [l for l in (DOCS/'topn.md').read_text().splitlines() if l.startswith('| ') and not l.startswith('| method')]
    table = set((ROOT/'results'/'topn.md').read_text().splitlines())
    assert len(rows) >= 5 and [r for r in rows if r not in table] == []

def test_foldin_rows_are_the_table():
    "Every table row of docs/foldin.md is a row of results/foldin.md, character for character, but its timing (was in test_coldstart.py)."
    rows = [l for l in (DOCS/'foldin.md').read_text().splitlines() if l.startswith('| ') and not l.startswith('| run ')]
    res = [l for l in (ROOT/'results'/'foldin.md').read_text().splitlines() if l.startswith('| ')]
    table = {*res, *(l.rsplit('|', 2)[0] + '|' for l in res)}  # whole, or every cell but the last (a time per user varies run to run)
    assert len(rows) >= 5 and set(rows) <= table

DOCS_MODULES = ('mkdocs', 'material', 'mkdocstrings', 'mkdocstrings_handlers.python', 'mkdocs_jupyter')

def test_site_builds_in_strict_mode(tmp_path):
    "`mkdocs build --strict` (the docs extra; CI installs it): no broken link, no unknown page, no API error."
    missing = [m for m in DOCS_MODULES if importlib.util.find_spec(m.split('.')[0]) is None
               or (m.count('.') and importlib.util.find_spec(m) is None)]
    if missing:
        msg = f"the docs extra is not installed ({', '.join(missing)} missing): `make docs` installs it"
        if under_ci(): pytest.fail(f'CI is set but {msg}', pytrace=False)
        pytest.skip(msg)
    env = dict(os.environ, NO_MKDOCS_2_WARNING='1')
    r = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--strict', '--config-file', str(ROOT/'mkdocs.yml'),
                        '--site-dir', str(tmp_path/'site')], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    problems = [l for l in r.stderr.splitlines() if l.startswith(('WARNING', 'ERROR', 'Aborted'))]
    assert r.returncode == 0, '\n'.join(problems) or r.stderr[-5000:]
    assert (tmp_path/'site'/'index.html').is_file() and (tmp_path/'site'/'api'/'index.html').is_file()
    assert (tmp_path/'site'/'notebooks'/'00_data'/'index.html').is_file()
