"""ndrsr-app in a real browser: headless Chromium (Debian's package, /usr/bin/chromium) driven by Playwright
against the real server (``ndrsr-app`` in a subprocess, the shipped default model, CPU).

What a user does: upload a photo, restore, download the PNG, and get exactly the file ``ndrsr-restore``
writes for it; open the maps and transfer tabs; upload bad files and read the message; two browser tabs at
once each get their own result. Skipped only when Chromium, Gradio or Playwright is not installed
(scripts/run_tests.sh installs them).
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest
from conftest import BIN, ROOT, run_tool

CHROMIUM = os.environ.get('NDRSR_CHROMIUM', '/usr/bin/chromium')
if not os.path.isfile(CHROMIUM):
    pytest.skip(f'no Chromium at {CHROMIUM} (apt-get install chromium; scripts/run_tests.sh does it)',
                allow_module_level=True)
pytest.importorskip('gradio', reason="the page's extra is not installed: pip install -e '.[app]'")
playwright = pytest.importorskip('playwright.sync_api', reason="Playwright is not installed: pip install -e '.[app]'")

pytestmark = pytest.mark.timeout(240)
WAIT_MS = 60_000  # a job on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """``ndrsr-app`` on a free port of 127.0.0.1; its URL. Stopped (and its output shown) at the end."""
    port = free_port()
    log = tmp_path_factory.mktemp('server') / 'log.txt'
    env = dict(os.environ, OMP_NUM_THREADS='2', CUDA_VISIBLE_DEVICES='', GRADIO_ANALYTICS_ENABLED='False',
               NDRSR_CACHE_DIR=str(tmp_path_factory.mktemp('cache')))
    with open(log, 'w') as out:
        proc = subprocess.Popen([os.path.join(BIN, 'ndrsr-app'), '--port', str(port)], stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f'http://127.0.0.1:{port}/'
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f'ndrsr-app did not start:\n{log.read_text()[-3000:]}')
            time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    text = log.read_text()
    assert 'Traceback' not in text, text[-3000:]  # every error was a message on the page


@pytest.fixture(scope='module')
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=['--no-sandbox'])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(accept_downloads=True, viewport={'width': 1280, 'height': 1000})
    tab = context.new_page()
    tab.goto(server)
    yield tab
    context.close()


def photo_16bit_alpha(path, seed: int = 0) -> str:
    """A 16-bit RGBA PNG (72 x 96): a scikit-image photo with noise and a gradient alpha channel."""
    import skimage
    img = cv2.imread(os.path.join(os.path.dirname(skimage.__file__), 'data', 'chelsea.png'), cv2.IMREAD_COLOR)
    img = cv2.resize(img, (96, 72), interpolation=cv2.INTER_AREA).astype(np.float64) / 255
    img = np.clip(img + np.random.default_rng(seed).normal(0, 0.08, img.shape), 0, 1)
    alpha = np.tile(np.linspace(0.2, 1, 96), (72, 1))
    rgba = np.round(np.dstack([img, alpha]) * 65535).astype(np.uint16)
    cv2.imwrite(str(path), rgba)
    return str(path)


def upload(tab, elem_id: str, *paths) -> None:
    tab.locator(f'#{elem_id} input[type=file]').set_input_files([str(p) for p in paths])
    stem = os.path.splitext(os.path.basename(str(paths[-1])))[0]  # a long name is shown as stem + extension
    tab.locator(f'#{elem_id}').get_by_text(stem).first.wait_for(timeout=WAIT_MS)


def download(tab, elem_id: str, dest) -> str:
    """Click the first download link of the output ``elem_id``; the saved file's path (under ``dest``, created)."""
    os.makedirs(str(dest), exist_ok=True)
    link = tab.locator(f'#{elem_id} a[download]').first
    link.wait_for(timeout=WAIT_MS)
    with tab.expect_download() as info:
        link.click()
    path = os.path.join(str(dest), info.value.suggested_filename)
    info.value.save_as(path)
    return path


def error_message(tab) -> str:
    toast = tab.locator('.toast-body').last
    toast.wait_for(timeout=WAIT_MS)
    return toast.inner_text()


def test_restore_downloads_what_ndrsr_restore_writes(page, tmp_path):
    src = photo_16bit_alpha(tmp_path / 'cat16.png')
    upload(page, 'restore-input', src)
    page.click('#restore-run')
    page.locator('#restore-summary').get_by_text('Restored 1 of 1').wait_for(timeout=WAIT_MS)
    got = download(page, 'restore-output', tmp_path / 'downloads')
    assert os.path.basename(got) == 'cat16.png'
    cli = run_tool('ndrsr-restore', src, '-o', str(tmp_path / 'cli'), '--ext', 'png', '-q')
    assert cli.returncode == 0, cli.stderr
    expected = tmp_path / 'cli' / 'cat16.png'
    written = cv2.imread(got, cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == (72, 96, 4)  # 16 bits and alpha kept
    assert open(got, 'rb').read() == expected.read_bytes()  # byte for byte the tool's file
    assert page.locator('#restore-slider img').count() == 2  # before / after


def test_bad_files_give_a_message_and_the_server_keeps_serving(page, tmp_path):
    truncated = tmp_path / 'truncated.png'
    good = photo_16bit_alpha(tmp_path / 'good.png')
    truncated.write_bytes(open(good, 'rb').read()[:300])
    text = tmp_path / 'notes.txt'
    text.write_text('not an image')
    upload(page, 'restore-input', truncated)
    page.click('#restore-run')
    assert 'truncated.png' in error_message(page)
    page.reload()  # a fresh visit: the server is still there
    upload(page, 'restore-input', text, good)  # one bad file among good ones: listed as failed, the rest restored
    page.click('#restore-run')
    summary = page.locator('#restore-summary')
    summary.get_by_text('Restored 1 of 2').wait_for(timeout=WAIT_MS)
    assert 'FAILED notes.txt' in summary.inner_text()


def test_huge_image_is_refused_from_its_header(page, tmp_path):
    """A 12000 x 9000 PNG (108 MP, a small file): over the 100 MP limit, refused before it is decoded."""
    huge = tmp_path / 'huge.png'
    cv2.imwrite(str(huge), np.zeros((9000, 12000), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    upload(page, 'restore-input', huge)
    page.click('#restore-run')
    message = error_message(page)
    assert 'huge.png' in message and 'pixels' in message


def test_two_tabs_get_their_own_results(browser, server, tmp_path):
    tabs = []
    for k in range(2):
        context = browser.new_context(accept_downloads=True)
        tab = context.new_page()
        tab.goto(server)
        upload(tab, 'restore-input', photo_16bit_alpha(tmp_path / f'photo{k}.png', seed=k))
        tabs.append(tab)
    for tab in tabs:  # both requests queued before either finishes
        tab.click('#restore-run')
    for k, tab in enumerate(tabs):
        tab.locator('#restore-summary').get_by_text('Restored 1 of 1').wait_for(timeout=WAIT_MS)
        assert os.path.basename(download(tab, 'restore-output', tmp_path / f'dl{k}')) == f'photo{k}.png'
        assert f'photo{k}.png' in tab.locator('#restore-summary').inner_text()
        tab.context.close()


def test_maps_tab_shows_the_maps_with_a_legend(page, tmp_path):
    from ndrsr.app.examples import write_examples
    page.get_by_role('tab', name='What it sees').click()
    upload(page, 'maps-input', write_examples(str(tmp_path / 'examples'))['chelsea_noise25.png'])
    page.click('#maps-run')
    page.locator('#maps-legend').get_by_text('How to read the maps').wait_for(timeout=WAIT_MS)
    assert page.locator('#maps-gallery img').count() == 9  # 3 levels x atom / confidence / U
    assert page.locator('#maps-summary img').count() == 1


def test_transfer_tab_writes_what_ndrsr_degrade_writes(page, tmp_path):
    from ndrsr.app.examples import write_examples
    examples = write_examples(str(tmp_path / 'examples'))
    clean, like = examples['astronaut_clean.png'], examples['motorcycle_rain.png']
    page.get_by_role('tab', name='Transfer').click()
    upload(page, 'transfer-clean', clean)
    upload(page, 'transfer-like', like)
    page.click('#transfer-run')
    page.locator('#transfer-summary').get_by_text('Done in').wait_for(timeout=WAIT_MS)
    got = download(page, 'transfer-output', tmp_path / 'downloads')
    cli = run_tool('ndrsr-degrade', '--like', like, clean, '-o', str(tmp_path / 'cli'), '-q')
    assert cli.returncode == 0, cli.stderr
    expected = tmp_path / 'cli' / 'astronaut_clean_like_motorcycle_rain.png'
    assert os.path.basename(got) == expected.name
    assert open(got, 'rb').read() == expected.read_bytes()


def test_cli_help_and_missing_extra_message():
    out = subprocess.run([sys.executable, '-m', 'ndrsr.app.main', '--help'], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and '--host' in out.stdout and '127.0.0.1' in out.stdout
    assert shutil.which('ndrsr-app', path=BIN)
