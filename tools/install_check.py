"""`make install-check`: movierecs installed by `pip install .` into a fresh venv, used from a folder with no checkout in it.
Run with that venv's python from outside the checkout: it imports, trains, recommends, loads the regression bars (package
data) and serves the page (package data), and says what it checked. Exit 0 when everything worked."""
import json, os, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

def main():
    import movierecs
    home = Path(movierecs.__file__).resolve().parent
    assert 'site-packages' in home.parts, f'movierecs is imported from {home}, not from an installed copy'
    assert not (home.parent/'results').exists(), 'a results/ folder sits beside the installed package'
    print(f'imported from {home}')
    bar = movierecs.EXPERIMENTS['collab'].threshold  # the seed-spread bars: package data
    print(f"Experiment('collab').threshold = {bar:.4f} (from {movierecs.SEEDS_CSV.relative_to(home.parent)})")
    learn = movierecs.train_model('dot_bias', epochs=1, seed=42, progress=False)
    print(f"train_model('dot_bias', epochs=1): valid MSE {learn.loss_table.df.valid_loss.iloc[-1]:.4f}")
    print('recommend(learn, 196):', ', '.join(movierecs.recommend(learn, 196, n=3).index))
    exe = Path(sys.executable).with_name('movierecs')
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, 'MOVIERECS_CACHE': cache}
        r = subprocess.run([str(exe), 'recommend', '--by', 'rating', '--rate', 'Star Wars (1977)=5', '--rate', 'Alien (1979)=5',
                            '-n', '3', '--json'],
                           capture_output=True, text=True, env=env, timeout=1800)
        assert r.returncode == 0, r.stderr[-2000:]
        print('movierecs recommend --rate ...:', ', '.join(x['title'] for x in json.loads(r.stdout)))
        port = 8765
        srv = subprocess.Popen([str(exe), 'serve', '--port', str(port), '--model', str(Path(cache)/'default')], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(600):
                try:
                    with urllib.request.urlopen(f'http://127.0.0.1:{port}/static/app.css', timeout=2) as css: body = css.read().decode()
                    break
                except OSError: time.sleep(0.5)
            else: raise AssertionError('movierecs serve did not answer in 5 minutes')
            with urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=10) as page: html = page.read().decode()
            assert 'body{' in body and '/static/app.js' in html
            print(f'movierecs serve: / and /static/app.css answer ({len(html):,} and {len(body):,} bytes)')
        finally: srv.terminate(); srv.wait(30)
    print('install check passed')

if __name__ == '__main__': main()
