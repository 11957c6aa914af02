("The house: layers that import only downwards (import-linter's contract in setup.cfg), no circles, "
 "no private names across subpackages, one lazy face.")
import ast, importlib, shutil, subprocess, sys
from pathlib import Path
import pytest
import movierecs

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT/'movierecs'
LAYERS = ['core', 'data', 'engine', 'models', 'train', 'evaluation', 'recommendation', 'app', 'studies']  # bottom to top

def _modules(pkg=PKG):
    "{dotted name: path} of every module of the package."
    out = {}
    for p in pkg.rglob('*.py'):
        parts = p.relative_to(pkg.parent).with_suffix('').parts
        out['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = p
    return out

def _imports(mods):
    "(importer, imported module, name) of every `from` import inside the package, function-level ones included."
    out = []
    for m, p in mods.items():
        base = m.split('.') if p.name == '__init__.py' else m.split('.')[:-1]
        for n in ast.walk(ast.parse(p.read_text(encoding='utf-8'))):
            if not isinstance(n, ast.ImportFrom): continue
            tgt = '.'.join(base[:len(base) - n.level + 1] + ([n.module] if n.module else [])) if n.level else (n.module or '')
            if not tgt.startswith('movierecs'): continue
            for a in n.names: out.append((m, f'{tgt}.{a.name}' if f'{tgt}.{a.name}' in mods else tgt, a.name))
    return out

def _lint_imports(root):
    exe = Path(sys.executable).with_name('lint-imports')
    if not exe.exists(): pytest.skip('import-linter is not installed: pip install -e .[test]')
    return subprocess.run([str(exe), '--config', str(root/'setup.cfg'), '--no-cache'], cwd=root, capture_output=True, text=True,
                          env={'PYTHONPATH': str(root), 'PATH': '/usr/bin:/bin'})

def test_the_layer_contract_holds():
    r = _lint_imports(ROOT)
    assert r.returncode == 0 and 'Contracts: 1 kept, 0 broken.' in r.stdout, r.stdout[-2000:] + r.stderr

def test_the_layer_contract_catches_a_back_import(tmp_path):
    "The contract is not vacuous: the engine importing a study breaks it."
    shutil.copytree(PKG, tmp_path/'movierecs', ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy(ROOT/'setup.cfg', tmp_path)
    with open(tmp_path/'movierecs'/'engine'/'fast.py', 'a') as f: f.write('\ndef _up():\n    from ..studies import reproduce  # noqa\n')
    r = _lint_imports(tmp_path)
    assert r.returncode != 0 and 'movierecs.engine.fast -> movierecs.studies.reproduce' in r.stdout, r.stdout[-2000:]

def test_the_layers_are_the_subpackages():
    "Every module lives in one of the layers (the package's face and `__main__` aside), and the contract lists them in this order."
    mods = _modules()
    loose = [m for m in mods if m.count('.') < 1 or m.split('.')[1] not in LAYERS]
    assert sorted(loose) == ['movierecs', 'movierecs.__main__'], loose
    cfg = (ROOT/'setup.cfg').read_text().split('[importlinter:contract:layers]')[1]
    listed = [line.strip().removeprefix('movierecs.') for line in cfg.split('layers =')[1].splitlines()
              if line.strip().startswith('movierecs')]
    assert listed == ['__main__', *LAYERS[::-1]]

def test_no_private_name_crosses_a_subpackage():
    "What another subpackage needs is public in its home module: no `from ..x import _name` across subpackages."
    sub = lambda m: m.split('.')[1] if m.count('.') >= 1 else ''
    bad = [(a, b, n) for a, b, n in _imports(_modules()) if n.startswith('_') and not n.startswith('__') and sub(a) != sub(b)]
    assert not bad, bad

def test_no_import_circles():
    "No two modules import each other, directly or round a longer loop (imports inside functions count)."
    mods = _modules()
    edges = {m: set() for m in mods}
    for a, b, _ in _imports(mods):
        if (b in mods and b != a and not (mods[b].name == '__init__.py' and a.startswith(b + '.'))
                and not (a + '.' in b and mods[a].name == '__init__.py')):
            edges[a].add(b)
    seen, stack, circles = {}, [], []
    def visit(v):
        seen[v] = 1; stack.append(v)
        for w in edges[v]:
            if seen.get(w) == 1: circles.append(stack[stack.index(w):] + [w])
            elif w not in seen: visit(w)
        stack.pop(); seen[v] = 2
    for m in mods:
        if m not in seen: visit(m)
    assert not circles, circles

def test_fastai_private_names_live_behind_one_wall():
    "Only engine/fastai_glue.py imports a leading-underscore name from fastai."
    users = {}
    for m, p in _modules().items():
        for n in ast.walk(ast.parse(p.read_text(encoding='utf-8'))):
            if isinstance(n, ast.ImportFrom) and (n.module or '').startswith('fastai') and any(a.name.startswith('_') for a in n.names):
                users.setdefault(m, []).extend(a.name for a in n.names if a.name.startswith('_'))
    assert set(users) == {'movierecs.engine.fastai_glue'}, users

def test_the_face_holds_every_listed_module_public_names():
    "`movierecs.X` for each name of each face module's `__all__`; each name resolves to its home's object."
    for m, names in movierecs._FACE.items():
        mod = importlib.import_module(f'movierecs.{m}')
        public = [n for n in mod.__all__ if movierecs._HOME[n] == m] if m != 'app.defaults' else ['default_learner']
        assert names.split() == public, (m, names, public)
        for n in names.split(): assert getattr(movierecs, n) is getattr(mod, n), n
    assert set(movierecs.__all__) == set(movierecs._HOME) and not set(movierecs.__all__) & set(LAYERS)

def test_fastai_private_methods_are_overridden_behind_the_wall():
    "A class that overrides a leading-underscore method of a fastai base class is defined in engine/fastai_glue.py."
    import inspect
    found = {}
    for m in _modules():
        if m == 'movierecs.__main__': continue
        mod = importlib.import_module(m)
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ != m: continue
            bases = [b for b in cls.__mro__[1:] if b.__module__.startswith('fastai')]
            own = [k for k in vars(cls) if k.startswith('_') and not k.startswith('__') and any(k in vars(b) for b in bases)]
            if own: found[f'{m}.{cls.__name__}'] = own
    assert found and {k.rsplit('.', 1)[0] for k in found} == {'movierecs.engine.fastai_glue'}, found
