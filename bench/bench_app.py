"""The web page's overhead against the command-line tool: ndrsr-app's start-up and a 512 x 512 restore.

    .venv/bin/python bench/bench_app.py [--runs 3] [--size 512] [--threads 2]

Measures, on the CPU with the default model:

* start-up: from starting ``ndrsr-app`` until its page answers (import, examples, Gradio's server);
* the page: a real headless Chromium (/usr/bin/chromium, Playwright) uploads a SIZE x SIZE photo, presses
  Restore and waits for the download link (upload, queue, restore, PNG and previews written, result sent);
  the page's own "restored in" figure (the network alone) is read from the summary;
* the tool: ``ndrsr-restore PHOTO -o OUT --ext png`` as a process (Python start, model load, restore,
  write), the same photo and settings.

Prints one line per run and the medians. Needs the app extra (``pip install -e '.[app]'``) and Chromium.
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from os import path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
BIN = osp.dirname(sys.executable)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def make_photo(path: str, size: int) -> None:
    """A SIZE x SIZE crop of a scikit-image photo with Gaussian noise (sigma 25), 8-bit PNG."""
    import cv2
    import numpy as np
    import skimage
    img = cv2.imread(osp.join(osp.dirname(skimage.__file__), 'data', 'astronaut.png'), cv2.IMREAD_COLOR)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    img += np.random.default_rng(0).normal(0, 25, img.shape)
    cv2.imwrite(path, np.clip(np.round(img), 0, 255).astype(np.uint8))


def start_app(port: int, env: dict) -> 'tuple[subprocess.Popen, float]':
    start = time.perf_counter()
    proc = subprocess.Popen([osp.join(BIN, 'ndrsr-app'), '--port', str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=2).close()
            return proc, time.perf_counter() - start
        except OSError:
            if proc.poll() is not None:
                raise SystemExit('ndrsr-app exited during start-up')
            time.sleep(0.1)


def page_restore(browser, url: str, photo: str) -> 'tuple[float, float]':
    """(seconds from pressing Restore to the download link, the page's own restore time)."""
    tab = browser.new_page()
    tab.goto(url)
    tab.locator('#restore-input input[type=file]').set_input_files(photo)
    tab.locator('#restore-input').get_by_text(osp.basename(photo)).first.wait_for(timeout=60_000)
    start = time.perf_counter()
    tab.click('#restore-run')
    tab.locator('#restore-output a[download]').first.wait_for(timeout=300_000)
    seconds = time.perf_counter() - start
    text = tab.locator('#restore-summary').inner_text()
    tab.close()
    return seconds, float(re.search(r': \d+x\d+, ([\d.]+) s', text).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--chromium', default='/usr/bin/chromium')
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), CUDA_VISIBLE_DEVICES='',
               GRADIO_ANALYTICS_ENABLED='False')
    work = tempfile.mkdtemp(prefix='bench-app-')
    photo = osp.join(work, f'photo{args.size}.png')
    make_photo(photo, args.size)
    starts, pages, networks, tools = [], [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=['--no-sandbox'])
        for run in range(args.runs):
            port = free_port()
            proc, startup = start_app(port, env)
            try:
                page_restore(browser, f'http://127.0.0.1:{port}/', photo)  # first request loads the model
                page_s, network_s = page_restore(browser, f'http://127.0.0.1:{port}/', photo)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            t0 = time.perf_counter()
            subprocess.run([osp.join(BIN, 'ndrsr-restore'), photo, '-o', osp.join(work, f'cli{run}'), '--ext', 'png',
                            '-q'], env=env, check=True, capture_output=True)
            tool_s = time.perf_counter() - t0
            print(f'run {run + 1}: start-up {startup:.2f} s | page (2nd request, click -> download link) '
                  f'{page_s:.2f} s, of which the network {network_s:.2f} s | ndrsr-restore process {tool_s:.2f} s',
                  flush=True)
            starts.append(startup)
            pages.append(page_s)
            networks.append(network_s)
            tools.append(tool_s)
        browser.close()
    med = statistics.median
    print(f'median of {args.runs}, {args.size}x{args.size}, {args.threads} threads: start-up {med(starts):.2f} s; '
          f'page restore {med(pages):.2f} s (network {med(networks):.2f} s, page overhead '
          f'{med(pages) - med(networks):.2f} s); ndrsr-restore process {med(tools):.2f} s')


if __name__ == '__main__':
    main()
