"""ndrsr.lib.download against real misbehaving HTTP servers on 127.0.0.1: stalls, short bodies, huge announced
sizes, corrupted files, full disks, leftovers of killed processes."""
import errno
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from ndrsr.lib import download
from ndrsr.lib.download import DownloadError, Pin, download_file

PAYLOAD = bytes(range(256)) * 64  # 16 KiB
PIN = Pin(len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest())


class Server:
    """A ThreadingHTTPServer whose answer to every GET is chosen by ``mode``; counts the requests."""

    def __init__(self, mode='ok', body=PAYLOAD):
        self.mode, self.body, self.hits = mode, body, 0
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits += 1
                body, mode = outer.body, outer.mode
                self.send_response(200)
                announced = {'short': len(body) * 2, 'huge': 50 << 30}.get(mode, len(body))
                self.send_header('Content-Length', str(announced))
                self.end_headers()
                if mode == 'stall':  # headers, then nothing
                    outer.release.wait(30)
                    return
                if mode == 'huge':
                    self.wfile.write(body)
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f'http://127.0.0.1:{self.httpd.server_address[1]}/model_L.pth'

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    servers = []

    def make(mode='ok', body=PAYLOAD):
        servers.append(Server(mode, body))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def files_in(folder):
    return sorted(os.listdir(folder))


def test_a_good_download_is_verified_and_renamed_into_place(server, tmp_path):
    s = server()
    dest = tmp_path / 'model_L.pth'
    assert download_file(s.url, str(dest), PIN, retries=0) == str(dest)
    assert dest.read_bytes() == PAYLOAD and files_in(tmp_path) == ['model_L.pth']


def test_a_server_that_sends_headers_then_stalls_times_out_and_is_retried(server, tmp_path):
    s = server('stall')
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r'stopped sending for 0.5 s after 0 bytes; 2 tries') as err:
        download_file(s.url, str(tmp_path / 'model_L.pth'), PIN, timeout=0.5, retries=1, pause=0.1)
    assert time.monotonic() - start < 10
    assert s.url in str(err.value) and s.hits == 2
    assert files_in(tmp_path) == []  # no partial file left, nothing under the final name


def test_a_server_that_never_answers_times_out(tmp_path):
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(4)  # accepts connections (the kernel does), never answers
    try:
        url = f'http://127.0.0.1:{listener.getsockname()[1]}/model_L.pth'
        with pytest.raises(DownloadError, match=r'no answer within 0.5 s; 1 try'):
            download_file(url, str(tmp_path / 'model_L.pth'), PIN, timeout=0.5, retries=0)
    finally:
        listener.close()
    assert files_in(tmp_path) == []


def test_environment_sets_timeout_and_retries(server, tmp_path, monkeypatch):
    s = server('stall')
    monkeypatch.setenv('NDRSR_DOWNLOAD_TIMEOUT', '0.3')
    monkeypatch.setenv('NDRSR_DOWNLOAD_RETRIES', '0')
    with pytest.raises(DownloadError, match='0.3 s'):
        download_file(s.url, str(tmp_path / 'f'), PIN)
    assert s.hits == 1
    monkeypatch.setenv('NDRSR_DOWNLOAD_TIMEOUT', 'soon')
    with pytest.raises(DownloadError, match=r"\$NDRSR_DOWNLOAD_TIMEOUT='soon' is not a number"):
        download_file(s.url, str(tmp_path / 'f'), PIN)


def test_a_short_body_is_retried_and_never_saved_under_the_final_name(server, tmp_path):
    s = server('short')
    with pytest.raises(DownloadError, match=f'ended after {len(PAYLOAD)} of the {2 * len(PAYLOAD)} bytes'):
        download_file(s.url, str(tmp_path / 'model_L.pth'), Pin(), retries=1, pause=0.01)
    assert s.hits == 2 and files_in(tmp_path) == []


def test_a_corrupted_file_is_refused_and_deleted(server, tmp_path):
    flipped = bytearray(PAYLOAD)
    flipped[1000] ^= 0x40  # same size, one bit differs
    s = server(body=bytes(flipped))
    with pytest.raises(DownloadError, match='is not the published one .* it was deleted'):
        download_file(s.url, str(tmp_path / 'model_L.pth'), PIN, retries=0)
    assert files_in(tmp_path) == []
    s2 = server(body=PAYLOAD[:-1])
    with pytest.raises(DownloadError, match=f'has {len(PAYLOAD) - 1} bytes, not the {len(PAYLOAD)} of the published'):
        download_file(s2.url, str(tmp_path / 'model_L.pth'), PIN, retries=0)
    assert files_in(tmp_path) == []


def test_an_announced_size_over_the_cap_is_refused_before_writing(server, tmp_path):
    s = server('huge')
    with pytest.raises(DownloadError, match='announces 53687091200 bytes, more than the 16384 expected; refused'):
        download_file(s.url, str(tmp_path / 'model_L.pth'), PIN, retries=3)
    assert s.hits == 1 and files_in(tmp_path) == []  # not retried
    with pytest.raises(DownloadError, match='more than the 1000 expected'):  # no pin: the cap
        download_file(s.url, str(tmp_path / 'model_L.pth'), Pin(), max_bytes=1000, retries=0)


@pytest.mark.parametrize('url', ['not a url', 'ftp://example.org/x', 'http:///x'])
def test_a_malformed_url_is_refused_and_creates_nothing(tmp_path, url):
    with pytest.raises(DownloadError, match='is not a URL ndrsr can download from'):
        download_file(url, str(tmp_path / 'model_L.pth'), PIN)
    assert files_in(tmp_path) == []


def test_http_errors_name_the_status(tmp_path):
    class Missing(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), lambda *a: Missing(*a, directory=str(tmp_path)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(DownloadError, match='HTTP 404'):
            download_file(f'http://127.0.0.1:{httpd.server_address[1]}/nope.pth', str(tmp_path / 'x'), PIN)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_full_disk_says_so(server, tmp_path, monkeypatch):
    s = server()
    real_open = open

    class FullFile:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, 'No space left on device')

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def full_open(path, mode='r', *args, **kwargs):  # the disk under the cache fills up
        f = real_open(path, mode, *args, **kwargs)
        return FullFile(f) if 'w' in mode else f

    monkeypatch.setattr(download, 'open', full_open, raising=False)
    dest = tmp_path / 'model_L.pth'
    with pytest.raises(OSError) as err:
        download_file(s.url, str(dest), PIN, retries=2)
    assert str(err.value) == f'no space left on the device writing {dest}' and err.value.errno == errno.ENOSPC
    assert s.hits == 1 and files_in(tmp_path) == []


def test_leftovers_of_killed_downloads_are_removed(server, tmp_path):
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f'.model_L.pth.partial-{dead_pid}').write_bytes(b'half')
    alive = tmp_path / f'.model_L.pth.partial-{os.getppid()}'  # a running process: another download, kept
    alive.write_bytes(b'in progress')
    download_file(server().url, str(tmp_path / 'model_L.pth'), PIN, retries=0)
    assert files_in(tmp_path) == sorted(['model_L.pth', alive.name])


def test_a_refused_connection_is_said_at_once(tmp_path):
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r'downloading http://127.0.0.1:9/model_L.pth: .*refused'):
        download_file('http://127.0.0.1:9/model_L.pth', str(tmp_path / 'model_L.pth'), PIN, retries=3)
    assert time.monotonic() - start < 3 and files_in(tmp_path) == []
