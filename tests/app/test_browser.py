"End to end in a real browser: `movierecs serve` on a free loopback port, driven by headless Chromium through Selenium."
import shutil
from pathlib import Path
import pytest
import movierecs
from movierecs.app.defaults import default_next, default_ranker
from movierecs.core.files import write_atomic
from movierecs.app.serve import background

import os

# where the ML-100k run saves its screenshot; unset: a temporary folder (`make screenshot`: results/serve.png)
SCREENSHOT = 'MOVIERECS_SCREENSHOT'

def _missing():
    try: import selenium  # noqa: F401
    except ImportError: return 'selenium is not installed (pip install -e .[test])'
    for exe, pkg in (('chromium', 'chromium'), ('chromedriver', 'chromium-driver')):
        if not shutil.which(exe): return f'{exe} is not installed (apt-get install {pkg}; .ci/run does so)'

pytestmark = pytest.mark.skipif(bool(_missing()), reason=_missing() or '')

@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1280,1000'): opts.add_argument(a)
    opts.binary_location = shutil.which('chromium')
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    driver = webdriver.Chrome(service=Service(shutil.which('chromedriver')), options=opts)
    yield driver
    driver.quit()

def _rate_three_and_check(driver, base, rates, screenshot=None, nexter=None):
    ("Search each (query, title, stars) of `rates`, pick the title and rate it; check the top 10, the 'Watch next' list (the order "
     "rated is the history), the movie page and the map.")
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    wait = WebDriverWait(driver, 30, ignored_exceptions=[StaleElementReferenceException])
    def titles(css): return [e.get_attribute('data-title') for e in driver.find_elements(By.CSS_SELECTOR, css)]
    driver.get(base + '/')
    assert driver.find_element(By.ID, 'no-ratings').is_displayed()
    for query, title, stars in rates:
        box = driver.find_element(By.ID, 'q')
        box.clear(); box.send_keys(query)
        def pick(d):  # the search lists the title (it may redraw while we look): click its star button
            for li in d.find_elements(By.CSS_SELECTOR, '#matches li[data-title]'):
                if li.get_attribute('data-title') == title:
                    li.find_element(By.CSS_SELECTOR, f'button[data-stars="{stars}"]').click()
                    return True
        wait.until(pick)
        wait.until(lambda d: title in titles('#rated li[data-title]'))
    rated = {t: s for _, t, s in rates}
    def top10(d):
        recs = d.find_element(By.ID, 'recs')
        return recs.get_attribute('aria-busy') is None and len(titles('#recs tr.rec')) == 10
    wait.until(top10)
    assert titles('#rated li[data-title]') == list(rated) and not driver.find_element(By.ID, 'no-ratings').is_displayed()
    recs = titles('#recs tr.rec')
    assert len(set(recs)) == 10 and not set(recs) & set(rated)
    for row in driver.find_elements(By.CSS_SELECTOR, '#recs tr.rec'):
        because = row.find_element(By.CSS_SELECTOR, 'td.why a').text
        assert because in rated
    on = [len(li.find_elements(By.CSS_SELECTOR, 'button.star')) for li in driver.find_elements(By.CSS_SELECTOR, '#rated li')]
    assert on == [5] * len(rated) and driver.find_element(By.CSS_SELECTOR, '#rated li').text.count('★') == rates[0][2]
    if nexter is not None:  # what to watch next after the titles in the order they were rated
        def next10(d): return d.find_element(By.ID, 'next').get_attribute('aria-busy') is None and len(titles('#next tr.next')) == 10
        wait.until(next10)
        assert titles('#next tr.next') == movierecs.recommend_next(nexter, list(rated), n=10).title.tolist()
    if screenshot: write_atomic({screenshot: driver.get_screenshot_as_png()})
    first = recs[0]
    driver.find_element(By.CSS_SELECTOR, '#recs tr.rec td a').click()  # the movie page of the first recommendation
    wait.until(lambda d: d.find_element(By.TAG_NAME, 'h1').text == first)
    assert len(driver.find_elements(By.CSS_SELECTOR, 'tr.similar')) == 10
    driver.back()
    wait.until(top10)  # the ratings live in this browser: back on the page, the same list
    assert titles('#recs tr.rec') == recs
    driver.find_element(By.CSS_SELECTOR, '#rated li button.remove').click()
    wait.until(lambda d: len(titles('#rated li[data-title]')) == len(rated) - 1 and top10(d))
    assert rates[0][1] not in titles('#rated li[data-title]')
    driver.get(base + '/map')
    wait.until(lambda d: d.execute_script("const i = document.querySelector('img.map'); return i.complete && i.naturalWidth > 0"))
    problems = [e for e in driver.get_log('browser') if e['level'] == 'SEVERE']
    assert not problems, problems  # no script error, no blocked resource (the page works offline, under its CSP)

def test_rate_three_movies_synthetic(browser, synth, seed):
    "The page says it is preparing while the models train (as the first `movierecs serve` does), reloads itself, then works."
    import threading
    from selenium.webdriver.support.ui import WebDriverWait
    from movierecs.app.serve import Preparing, app
    trained = threading.Event()
    def load():
        trained.wait(60)
        learn = movierecs.train_model('mult_dae', epochs=3, seed=seed, ratings=synth, progress=False)
        return app(learn, movierecs.train_model('dot_bias', epochs=2, seed=seed, ratings=synth, progress=False), nexter)
    nexter = movierecs.train_model('sasrec', epochs=3, seed=seed, ratings=synth, progress=False, n_factors=16, max_len=20)
    base, stop = background(Preparing(load).start())
    try:
        browser.get(base + '/')
        assert 'Preparing the models' in browser.page_source and browser.title == 'movierecs: preparing'
        trained.set()
        WebDriverWait(browser, 60).until(lambda d: d.find_elements('id', 'q'))  # the page reloaded itself: the real one
        before = browser.get_log('browser')  # (reading the log empties it) while preparing: the 503s of the page, nothing else
        assert before and all('503 (Service Unavailable)' in e['message'] for e in before), before
        _rate_three_and_check(browser, base, [('movie 3', 'Movie 3 (1990)', 5), ('MOVIE 7', 'Movie 7 (1990)', 4),
                                              ('vie 9 (', 'Movie 9 (1990)', 1)], nexter=nexter)
    finally: stop()

@pytest.mark.slow
@pytest.mark.realdata
def test_rate_three_movies_ml100k(browser, ratings, trained, seed, tmp_path):
    ("The same on ML-100k (the ranking model and SASRec trained briefly, the notebook's collab run for the stars): "
     "the screenshot README shows (`make screenshot`).")
    shot = Path(os.environ.get(SCREENSHOT) or tmp_path/'serve.png')
    learn = movierecs.train_model(**{**default_ranker(), 'epochs': 15}, ratings=ratings, progress=False, cache=True)
    nexter = movierecs.train_model(**{**default_next(), 'epochs': 2}, ratings=ratings, progress=False)  # every rating twice
    base, stop = background(learn, trained('collab'), nexter=nexter)
    try: _rate_three_and_check(browser, base, [('star wars', 'Star Wars (1977)', 5), ('fargo', 'Fargo (1996)', 4),
                                               ('titanic', 'Titanic (1997)', 2)], screenshot=shot, nexter=nexter)
    finally: stop()
    assert shot.read_bytes().startswith(b'\x89PNG')
