"""train.autocast: bf16 training where the machine has native bf16, refused with the reason elsewhere."""
import pytest
import torch
from basicsr.models import build_model
from model_options import model_opt

from ndrsr.lib.cpu_features import cpu_bf16_support
from ndrsr.models import precision
from ndrsr.models.precision import training_autocast_dtype

NATIVE_BF16 = cpu_bf16_support()[0]


def batch(seed=0, size=16):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(2, 3, size, size, generator=g)
    return {'gt': gt, 'lq': (gt + 0.1 * torch.randn(gt.shape, generator=g)).clamp(0, 1),
            'task': ['noise', 'noise'], 'lq_path': ['a.png', 'b.png']}


def test_float32_is_the_default_and_unknown_values_are_named():
    assert training_autocast_dtype(None, torch.device('cpu')) is None
    with pytest.raises(ValueError, match=r"train.autocast must be ~ \(float32\) or bf16, got 'fp16'"):
        training_autocast_dtype('fp16', torch.device('cpu'))


def test_bf16_is_refused_with_the_reason_on_a_cpu_without_native_bf16(monkeypatch):
    reason = 'this CPU has no native bf16 instructions (test)'
    monkeypatch.setattr(precision, 'cpu_bf16_support', lambda: (False, reason))
    with pytest.raises(ValueError, match='refused here: this CPU has no native bf16 instructions') as err:
        training_autocast_dtype('bf16', torch.device('cpu'))
    assert 'Remove train.autocast' in str(err.value)


@pytest.mark.skipif(not NATIVE_BF16, reason='needs a CPU with native bf16 (AMX / AVX512-BF16)')
def test_bf16_training_step_follows_the_float32_step(tmp_path):
    """Same weights, same batch: the bf16 step's losses are within a few percent of float32's, the weights
    stay float32 and every parameter moves."""
    torch.manual_seed(0)
    fp32 = build_model(model_opt(tmp_path / 'a', 'joint'))
    bf16 = build_model(model_opt(tmp_path / 'b', 'joint', autocast='bf16'))
    bf16.net_g.load_state_dict(fp32.net_g.state_dict())
    bf16.net_degrad.load_state_dict(fp32.net_degrad.state_dict())
    assert bf16.autocast_dtype == torch.bfloat16 and fp32.autocast_dtype is None
    before = {k: v.clone() for k, v in bf16.net_g.state_dict().items()}
    for model in (fp32, bf16):
        model.feed_data(batch())
        model.optimize_parameters(1)
    for key in ('l_restore', 'l_degrad'):
        assert bf16.log_dict[key] == pytest.approx(fp32.log_dict[key], rel=0.05)
    assert all(p.dtype == torch.float32 for p in bf16.net_g.parameters())
    assert all(not torch.equal(before[k], v) for k, v in bf16.net_g.state_dict().items())
