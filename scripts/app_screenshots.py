"""Screenshots of ndrsr-app's three tabs for the docs: docs/figures/app_restore.png, app_maps.jpg, app_transfer.jpg.

    .venv/bin/python scripts/app_screenshots.py [--out docs/figures]

Starts ``ndrsr-app`` on a free port, and in headless Chromium (/usr/bin/chromium, Playwright) restores the
bundled noisy cat, shows what the network sees in the rainy street, transfers the cat's noise onto the clean
astronaut, and saves a screenshot of each tab. Needs the app extra (``pip install -e '.[app]'``).
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from os import path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
WAIT_MS = 300_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default=osp.join(ROOT, 'docs', 'figures'))
    parser.add_argument('--chromium', default='/usr/bin/chromium')
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS='2', CUDA_VISIBLE_DEVICES='', GRADIO_ANALYTICS_ENABLED='False')
    proc = subprocess.Popen([osp.join(osp.dirname(sys.executable), 'ndrsr-app'), '--port', str(port)], env=env)
    url = f'http://127.0.0.1:{port}/'
    try:
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit('ndrsr-app did not start')
                time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=['--no-sandbox'])
            tab = browser.new_page(viewport={'width': 1280, 'height': 900})
            tab.goto(url)
            tab.click('#restore-example-chelsea_noise25')
            tab.locator('#restore-input').get_by_text('chelsea_noise25').first.wait_for(timeout=WAIT_MS)
            tab.click('#restore-run')
            tab.locator('#restore-output a[download]').first.wait_for(timeout=WAIT_MS)
            tab.wait_for_timeout(1500)  # the slider's images
            tab.screenshot(path=osp.join(args.out, 'app_restore.png'))
            tab.get_by_role('tab', name='What it sees').click()
            tab.click('#maps-example-motorcycle_rain')
            tab.locator('#maps-input').get_by_text('motorcycle_rain').first.wait_for(timeout=WAIT_MS)
            tab.click('#maps-run')
            tab.locator('#maps-legend').get_by_text('How to read the maps').wait_for(timeout=WAIT_MS)
            tab.wait_for_timeout(1500)
            tab.screenshot(path=osp.join(args.out, 'app_maps.jpg'), type='jpeg', quality=85)
            tab.get_by_role('tab', name='Transfer').click()
            tab.click('#clean-example-astronaut_clean')
            tab.click('#like-example-chelsea_noise25')
            tab.locator('#transfer-like').get_by_text('chelsea_noise25').first.wait_for(timeout=WAIT_MS)
            tab.click('#transfer-run')
            tab.locator('#transfer-output a[download]').first.wait_for(timeout=WAIT_MS)
            tab.wait_for_timeout(1500)
            tab.screenshot(path=osp.join(args.out, 'app_transfer.jpg'), type='jpeg', quality=85)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    names = ('app_restore.png', 'app_maps.jpg', 'app_transfer.jpg')
    print('wrote', ', '.join(osp.join(args.out, name) for name in names))


if __name__ == '__main__':
    main()
