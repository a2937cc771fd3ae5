"""Ctrl-C in ndrsr/train.py: one line and the shell's status 130, as the tools end, not a KeyboardInterrupt
traceback."""
import signal
import subprocess
import sys
import time

from helpers_pipeline import TRAIN, env, make_pairs, train_options, write_yaml


def test_ctrl_c_during_training_says_interrupted_and_exits_130(tmp_path):
    dirs = make_pairs(str(tmp_path / 'data'))
    yml = write_yaml(train_options(dirs, 'stopped', total_iter=100000, save_freq=100000),
                     str(tmp_path / 'stopped.yml'))
    proc = subprocess.Popen([sys.executable, TRAIN, '-opt', yml], cwd=str(tmp_path), env=env(str(tmp_path / 'root')),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if 'iter:' in line:  # training has started: its iterations are logged
                proc.send_signal(signal.SIGINT)
                break
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = ''.join(lines) + rest
    assert any('iter:' in line for line in lines), out[-3000:]
    assert proc.returncode == 130, out[-3000:]
    assert out.rstrip().endswith('train.py: interrupted') and 'Traceback' not in out
