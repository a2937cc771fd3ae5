"""ndrsr-restore with data that looks fine but is not: non-finite weights and outputs, outputs another run wrote
meanwhile, maps and image as one unit, JPEGs cut short and patched, decompression bombs, EXIF orientation, full
disks, suffixes that leave the output folder, tile sizes that were rounded, a stalled model download."""
import errno
import http.server
import os
import struct
import subprocess
import threading
import time
import zlib

import cv2
import numpy as np
import pytest
import torch
from conftest import BIN, SMALL_RESTORE, run_tool
from PIL import Image

import ndrsr.lib.image_files as image_files
import ndrsr.lib.checkpoint as checkpoint
from ndrsr.archs import NDRRestore
from ndrsr.cli.restore import main as restore_main


def g(weights) -> str:
    return str(weights / 'net_g.pth')


def write_weights(path, overflow=False, fill=None):
    """Tiny NDRRestore weights: all ``fill`` (e.g. NaN), or finite but overflowing on any positive image."""
    torch.manual_seed(0)
    sd = NDRRestore(**SMALL_RESTORE).state_dict()
    if fill is not None:
        sd = {k: torch.full_like(v, fill) if v.is_floating_point() else v for k, v in sd.items()}
    if overflow:  # the first convolution sums 27 positive pixels times 3e38: inf, then NaN after the norms
        sd['embed.weight'] = torch.full_like(sd['embed.weight'], 3e38)
    torch.save({'params': sd}, path)
    return str(path)


def listing(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


# ----------------------------------------------------------------------------- non-finite weights and outputs
def test_nan_weights_are_refused_naming_the_file(tmp_path, photos, capsys):
    nan = write_weights(tmp_path / 'nan.pth', fill=float('nan'))
    assert restore_main([str(photos), '-o', str(tmp_path / 'out'), '-w', nan, '-q']) == 2
    err = capsys.readouterr().err
    assert f'{nan} [params]' in err and 'NaN or infinite values' in err and err.count('\n') == 1
    assert not (tmp_path / 'out').exists()


def test_a_non_finite_output_fails_that_image_and_names_the_weights(tmp_path, photos, capsys):
    huge = write_weights(tmp_path / 'huge.pth', overflow=True)  # finite weights, non-finite output
    assert restore_main([str(photos), '-o', str(tmp_path / 'out'), '-w', huge, '-q']) == 1
    err = capsys.readouterr().err
    assert 'FAILED' in err and 'NaN or infinite values' in err and huge in err
    assert listing(tmp_path / 'out') == []


# ----------------------------------------------------------------------------- no-replace writes
def another_run_writes_a_first(monkeypatch, out):
    """A second run into the same folder finishes a.png just before this one writes it."""
    real = image_files.write_image_file

    def write(path, *args, **kwargs):
        if os.path.basename(path) == 'a.png' and not (out / 'a.png').exists():
            out.mkdir(exist_ok=True)
            (out / 'a.png').write_bytes(b'the other run')
        return real(path, *args, **kwargs)

    monkeypatch.setattr(image_files, 'write_image_file', write)


def test_an_output_another_run_wrote_meanwhile_is_not_replaced(tmp_path, photos, weights, capsys, monkeypatch):
    out = tmp_path / 'out'
    another_run_writes_a_first(monkeypatch, out)
    assert restore_main([str(photos), '-o', str(out), '-w', g(weights), '-q']) == 1
    err = capsys.readouterr().err
    assert 'a.png' in err and 'already exists' in err
    assert (out / 'a.png').read_bytes() == b'the other run'
    assert listing(out) == ['a.png', 'b.png']  # nothing left behind, b.png written


def test_skip_existing_keeps_an_output_another_run_wrote_meanwhile(tmp_path, photos, weights, capsys, monkeypatch):
    out = tmp_path / 'out'
    another_run_writes_a_first(monkeypatch, out)
    assert restore_main([str(photos), '-o', str(out), '-w', g(weights), '-q', '--skip-existing']) == 0
    assert (out / 'a.png').read_bytes() == b'the other run'
    assert 'kept 1 existing output' in capsys.readouterr().out


# ----------------------------------------------------------------------------- maps and image as one unit
MAP_FILES = sorted([f'L{i}_{n}.png' for i in (1, 2, 3) for n in ('atom', 'confidence', 'U')] + ['summary.png'])


def test_skip_existing_completes_missing_or_partial_maps(tmp_path, photos, weights):
    out = tmp_path / 'out'
    args = [str(photos), '-o', str(out), '-w', g(weights), '-q', '--save-maps']
    assert restore_main(args) == 0
    assert listing(out / 'a_maps') == MAP_FILES
    image_a = (out / 'a.png').read_bytes()
    os.remove(out / 'a_maps' / 'summary.png')  # a partial maps folder (interrupted by an older version)
    for f in os.listdir(out / 'b_maps'):
        os.remove(out / 'b_maps' / f)
    os.rmdir(out / 'b_maps')  # interrupted between the image and its maps
    assert restore_main(args + ['--skip-existing']) == 0
    assert listing(out / 'a_maps') == MAP_FILES and listing(out / 'b_maps') == MAP_FILES
    assert (out / 'a.png').read_bytes() == image_a


def test_a_failure_while_writing_maps_leaves_neither_image_nor_maps(tmp_path, photos, weights, capsys, monkeypatch):
    import ndrsr.cli.maps as maps
    real, calls = maps.write_rgb8, []

    def fail_on_the_third(path, rgb):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.EIO, 'Input/output error', path)
        real(path, rgb)

    monkeypatch.setattr(maps, 'write_rgb8', fail_on_the_third)
    out = tmp_path / 'out'
    assert restore_main([str(photos / 'a.png'), '-o', str(out), '-w', g(weights), '-q', '--save-maps']) == 1
    assert listing(out) == []
    monkeypatch.setattr(maps, 'write_rgb8', real)
    assert restore_main([str(photos / 'a.png'), '-o', str(out), '-w', g(weights), '-q', '--save-maps',
                         '--skip-existing']) == 0
    assert listing(out) == ['a.png', 'a_maps'] and listing(out / 'a_maps') == MAP_FILES


# ----------------------------------------------------------------------------- images that are not what they look
def test_a_jpeg_cut_short_with_an_end_marker_fails(tmp_path, weights, capsys):
    (tmp_path / 'in').mkdir()
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (5, 5), 0)
    data = cv2.imencode('.jpg', img)[1].tobytes()
    (tmp_path / 'in' / 'cut.jpg').write_bytes(data[:len(data) // 2] + b'\xff\xd9')
    cv2.imwrite(str(tmp_path / 'in' / 'good.jpg'), img)
    assert restore_main([str(tmp_path / 'in'), '-o', str(tmp_path / 'out'), '-w', g(weights), '-q']) == 1
    err = capsys.readouterr().err
    assert 'cut.jpg' in err and 'JPEG image data is incomplete' in err
    assert listing(tmp_path / 'out') == ['good.jpg']


def bomb_png(width, height):
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b'')


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, photos, weights, capsys):
    (photos / 'bomb.png').write_bytes(bomb_png(30000, 30000))
    assert restore_main([str(photos), '-o', str(tmp_path / 'out'), '-w', g(weights), '-q']) == 1
    err = capsys.readouterr().err
    assert 'bomb.png: 30000x30000 pixels (900 MP) is more than the limit of 100 MP' in err
    assert '--max-megapixels' in err
    assert listing(tmp_path / 'out') == ['a.png', 'b.png']
    assert restore_main([str(photos / 'bomb.png'), '-o', str(tmp_path / 'o2'), '-w', g(weights), '-q',
                         '--max-megapixels', '0.0001']) == 1
    assert restore_main([str(photos / 'a.png'), '-o', str(tmp_path / 'o3'), '-w', g(weights), '-q',
                         '--max-megapixels', '0.0001']) == 1  # 560 pixels > 100
    assert 'more than the limit of 0.0001 MP' in capsys.readouterr().err


def test_exif_orientation_is_applied(tmp_path, weights):
    (tmp_path / 'in').mkdir()
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)  # landscape as stored, portrait to view (tag 6)
    pil = Image.fromarray(stored)
    exif = pil.getexif()
    exif[0x0112] = 6
    pil.save(tmp_path / 'in' / 'portrait.png', exif=exif)
    assert restore_main([str(tmp_path / 'in'), '-o', str(tmp_path / 'out'), '-w', g(weights), '-q']) == 0
    assert cv2.imread(str(tmp_path / 'out' / 'portrait.png')).shape == (40, 24, 3)


# ----------------------------------------------------------------------------- paths and tiles
@pytest.mark.parametrize('suffix', ['/../../escaped', '_x/y', '..' + os.sep + 'up'])
def test_a_suffix_that_leaves_the_output_folder_is_refused(tmp_path, photos, weights, capsys, suffix):
    assert restore_main([str(photos), '-o', str(tmp_path / 'a' / 'b' / 'out'), '-w', g(weights), '-q',
                         '--suffix', suffix]) == 2
    err = capsys.readouterr().err
    assert '--suffix' in err and err.count('\n') == 1
    assert not (tmp_path / 'a').exists() and not (tmp_path / 'escaped.png').exists()


def test_rounded_tiles_and_clamped_overlaps_are_reported(tmp_path, photos, weights, capsys):
    assert restore_main([str(photos), '-o', str(tmp_path / 'out'), '-w', g(weights), '-q', '--tile', '1']) == 0
    out = capsys.readouterr().out
    assert 'tile 8 (--tile 1 rounded up to a multiple of 8)' in out
    assert restore_main([str(photos), '-o', str(tmp_path / 'o2'), '-w', g(weights), '-q', '--tile', '16',
                         '--tile-overlap', '12']) == 0
    assert 'overlap 8 (--tile-overlap 12: at most half the tile)' in capsys.readouterr().out


# ----------------------------------------------------------------------------- full disks
def simulate_full_disk(monkeypatch, module, after=100):
    """``module.atomic_write`` (the real one) whose writer fails with ENOSPC after ``after`` bytes."""
    real = checkpoint.atomic_write

    def atomic_write_on_a_full_disk(path, write, *args, **kwargs):
        def full(tmp):
            write(tmp)
            with open(tmp, 'r+b') as f:
                f.truncate(after)
            raise OSError(errno.ENOSPC, 'No space left on device', tmp)
        return real(path, full, *args, **kwargs)

    monkeypatch.setattr(module, 'atomic_write', atomic_write_on_a_full_disk)


def test_a_full_output_disk_stops_at_once_with_one_line(tmp_path, photos, weights, capsys, monkeypatch):
    reads = []
    real = image_files.read_image_file
    monkeypatch.setattr(image_files, 'read_image_file', lambda *a, **k: reads.append(1) or real(*a, **k))
    simulate_full_disk(monkeypatch, image_files)
    out = tmp_path / 'out'
    assert restore_main([str(photos), '-o', str(out), '-w', g(weights), '-q']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f'ndrsr-restore: error: no space left on the device writing {out / "a.png"}'
    assert len(reads) == 1  # b.png was not even read
    assert listing(out) == []


def mount_tmpfs(folder, size):
    folder.mkdir()
    res = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(folder)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f'cannot mount a small tmpfs here ({res.stderr.decode().strip()[:80]}); the simulated '
                    f'full-disk tests cover it')


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / 'disk'
    mount_tmpfs(folder, '96k')
    yield folder
    subprocess.run(['umount', '-l', str(folder)], capture_output=True)


def test_a_really_full_output_disk(small_disk, tmp_path, weights):
    (tmp_path / 'in').mkdir()
    rng = np.random.default_rng(0)
    for name in ('a', 'b', 'c'):
        cv2.imwrite(str(tmp_path / 'in' / f'{name}.png'), rng.integers(0, 256, (112, 112, 3), dtype=np.uint8))
    stat = os.statvfs(small_disk)
    (small_disk / 'filler').write_bytes(b'\0' * (stat.f_bavail * stat.f_frsize - 8192))  # 8 KiB left
    out = small_disk / 'out'
    res = run_tool('ndrsr-restore', str(tmp_path / 'in'), '-o', str(out), '-w', g(weights), '-q')
    assert res.returncode == 2 and 'Traceback' not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith('ndrsr-restore: error: no space left on the device writing '
                                                          + str(out))
    assert listing(out) == []  # no half-written image, and the folder this run created is removed


def test_converting_into_a_full_disk_leaves_nothing(small_disk, reference, tmp_path):
    src = tmp_path / 'model_L.pth'
    torch.save(reference['state_dict'], src)
    (small_disk / 'filler').write_bytes(b'\0' * 60000)
    res = subprocess.run([os.path.join(BIN, 'ndrsr-convert'), str(src), str(small_disk / 'converted')],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and 'Traceback' not in res.stderr, res.stderr
    assert 'no space left on the device writing ' + str(small_disk / 'converted') in res.stderr
    assert listing(small_disk) == ['filler']


def test_saving_a_checkpoint_into_a_full_disk(small_disk):
    with pytest.raises(OSError) as err:
        checkpoint.atomic_torch_save({'w': torch.zeros(100_000)}, str(small_disk / 'net_g_1000.pth'))
    assert str(err.value) == f'no space left on the device writing {small_disk / "net_g_1000.pth"}'
    assert listing(small_disk) == []


# ----------------------------------------------------------------------------- a stalled model download
def test_a_stalled_model_download_times_out_with_one_line(tmp_path, photos):
    release = threading.Event()

    class Stall(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header('Content-Length', '113841146')
            self.end_headers()
            release.wait(60)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Stall)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f'http://127.0.0.1:{httpd.server_address[1]}/model_L.pth'
    env = dict(os.environ, NDRSR_URL_PAPER=url, NDRSR_CACHE_DIR=str(tmp_path / 'cache'), CUDA_VISIBLE_DEVICES='',
               NDRSR_DOWNLOAD_TIMEOUT='1', NDRSR_DOWNLOAD_RETRIES='1')
    start = time.monotonic()
    try:
        res = subprocess.run([os.path.join(BIN, 'ndrsr-restore'),
                              str(photos), '-o', str(tmp_path / 'out'), '--model', 'paper', '-q'],
                             capture_output=True, text=True, timeout=120, env=env)
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
    assert res.returncode == 2 and 'Traceback' not in res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith(f"ndrsr-restore: error: could not download model 'paper' from {url} (the server "
                           f"stopped sending for 1 s after 0 bytes; 2 tries)")
    assert time.monotonic() - start < 60
    assert not any(f for _, _, fs in os.walk(tmp_path / 'cache') for f in fs)
    assert not (tmp_path / 'out').exists()



def test_building_an_lmdb_on_a_full_disk_says_so(small_disk, tmp_path):
    (tmp_path / 'imgs').mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(tmp_path / 'imgs' / f'{i}.png'), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    stat = os.statvfs(small_disk)
    (small_disk / 'filler').write_bytes(b'\0' * (stat.f_bavail * stat.f_frsize - 32768))  # 32 KiB left
    res = run_tool('ndrsr-make-lmdb', str(tmp_path / 'imgs'), str(small_disk / 'x.lmdb'))
    assert res.returncode == 2 and 'Traceback' not in res.stderr
    assert res.stderr.strip().startswith(f'ndrsr-make-lmdb: error: no space left on the device writing '
                                         f'{small_disk / "x.lmdb"} (lmdb: ')
    assert listing(small_disk) == ['filler']


def test_eval_names_the_flag_of_a_missing_ground_truth_folder(photos):
    res = run_tool('ndrsr-eval', str(photos), '--gt', 'nope')
    assert res.returncode == 2
    assert 'Check the path given to --gt' in res.stderr and 'in the options' not in res.stderr


def test_degrade_reads_with_the_pixel_limit_and_never_replaces_another_runs_output(tmp_path, photos, weights,
                                                                                     capsys, monkeypatch):
    from ndrsr.cli.degrade import main as degrade_main
    args = ['--like', str(photos / 'a.png'), str(photos / 'b.png'), '-w', g(weights), '-q']
    assert degrade_main(args + ['-o', str(tmp_path / 'o1'), '--max-megapixels', '0.0001']) == 2
    assert 'more than the limit of 0.0001 MP' in capsys.readouterr().err  # the --like image itself
    out = tmp_path / 'o2'
    real = image_files.write_image_file

    def other_run_first(path, *a, **k):
        out.mkdir(exist_ok=True)
        (out / 'b_like_a.png').write_bytes(b'the other run')
        return real(path, *a, **k)

    monkeypatch.setattr(image_files, 'write_image_file', other_run_first)
    assert degrade_main(args + ['-o', str(out)]) == 1
    assert 'already exists' in capsys.readouterr().err and (out / 'b_like_a.png').read_bytes() == b'the other run'
