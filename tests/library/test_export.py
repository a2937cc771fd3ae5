"""Export and deployment formats: safetensors and ONNX round trips, spandrel loading, bf16 on the CPU.

Every round trip runs the real thing: onnx's checker and onnxruntime, the
safetensors library, spandrel's ModelLoader. Networks are tiny (SMALL_RESTORE)
except where the shipped default model is the point (spandrel recognising the
global residual of trained weights).
"""
import pytest
import torch
import yaml
from conftest import SMALL_DEGRAD, SMALL_RESTORE

from ndrsr.archs import NDRDegrad, NDRRestore
from ndrsr.lib.checkpoint import WeightsError
from ndrsr.lib.weights import load_degrad_network, load_restore_network

pytest.importorskip('onnxruntime')


@pytest.fixture(scope='module')
def trained_folder(tmp_path_factory):
    """net_g.pth / net_degrad.pth / network_options.yml of a tiny network with the global residual."""
    folder = tmp_path_factory.mktemp('tiny')
    torch.manual_seed(3)
    g_opt = dict(SMALL_RESTORE, global_residual=True)
    torch.save({'params': NDRRestore(**g_opt).state_dict()}, folder / 'net_g.pth')
    torch.save({'params': NDRDegrad(**SMALL_DEGRAD).state_dict()}, folder / 'net_degrad.pth')
    with open(folder / 'network_options.yml', 'w') as f:
        yaml.safe_dump({'network_g': {'type': 'NDRRestore', **g_opt},
                        'network_degrad': {'type': 'NDRDegrad', **SMALL_DEGRAD}}, f)
    return folder


@pytest.fixture(scope='module')
def exported_onnx(trained_folder, tmp_path_factory):
    from ndrsr.lib.export import export_onnx, network_spec
    spec = network_spec(str(trained_folder / 'net_g.pth'))
    path = str(tmp_path_factory.mktemp('onnx') / 'tiny.onnx')
    export_onnx(spec.restore_network(), path, source=spec.source, options=spec.restore_options)
    return spec, path


def image(h, w, batch=1):
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(h * 1000 + w))


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ----------------------------------------------------------------------------- safetensors
def test_safetensors_alone_rebuilds_both_networks(trained_folder, tmp_path):
    from ndrsr.lib.export import export_safetensors, network_spec
    out = tmp_path / 'alone' / 'model.safetensors'  # no network_options.yml beside it
    out.parent.mkdir()
    export_safetensors(network_spec(str(trained_folder / 'net_g.pth')), str(out))
    x = image(37, 53)
    with torch.no_grad():
        src_g, new_g = load_restore_network(str(trained_folder / 'net_g.pth')), load_restore_network(str(out))
        assert new_g.global_residual  # from the metadata: the shapes do not tell it
        same_weights(new_g, src_g)
        torch.testing.assert_close(new_g(x), src_g(x), rtol=0, atol=1e-6)  # bit-equal up to thread scheduling
        us = src_g(x, return_degradation=True)[1]
        src_d, new_d = load_degrad_network(str(trained_folder / 'net_g.pth')), load_degrad_network(str(out))
        same_weights(new_d, src_d)
        torch.testing.assert_close(new_d(x, us), src_d(x, us), rtol=0, atol=1e-6)


def test_safetensors_corrupt_or_foreign_file_is_named(tmp_path):
    from safetensors.torch import save_file
    bad = tmp_path / 'cut.safetensors'
    bad.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": ')
    with pytest.raises(WeightsError, match=f'{bad}.*not a readable safetensors file'):
        load_restore_network(str(bad))
    foreign = tmp_path / 'other.safetensors'
    save_file({'conv_first.weight': torch.zeros(4, 3, 3, 3)}, str(foreign))
    with pytest.raises(WeightsError, match=f'{foreign}.*no NDR-Restore or NDR-Degrad weights'):
        load_restore_network(str(foreign))


# ----------------------------------------------------------------------------- ONNX
def test_onnx_export_matches_pytorch_at_odd_sizes_and_batches(exported_onnx):
    import onnx

    from ndrsr.lib.export import PARITY_TOLERANCE, onnx_parity
    spec, path = exported_onnx
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 18
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ['batch', 3, 'height', 'width']
    diffs = onnx_parity(spec.restore_network(), path, sizes=((37, 53), (64, 64), (9, 130)), batch=2)
    assert max(diffs.values()) <= PARITY_TOLERANCE, diffs


def test_onnx_runs_through_the_tiler_like_pytorch(exported_onnx):
    from ndrsr.lib.onnx_runtime import load_onnx_restore
    from ndrsr.lib.tiling import tile_forward
    spec, path = exported_onnx
    net, onnx_net = spec.restore_network(), load_onnx_restore(path)
    assert (onnx_net.upscale, onnx_net.stride, onnx_net.options['global_residual']) == (1, 8, True)
    for shape, tile in (((1, 3, 3, 5), 0), ((1, 3, 90, 133), 64), ((2, 3, 45, 61), 0)):
        x = image(*shape[2:], batch=shape[0])
        ours, theirs = tile_forward(onnx_net, x, tile=tile), tile_forward(net, x, tile=tile)
        assert ours.shape == theirs.shape == shape
        assert (ours - theirs).abs().max() <= 1e-4


def test_load_restore_network_opens_onnx_and_says_what_it_cannot_do(exported_onnx):
    from ndrsr.lib.onnx_runtime import OnnxRestoreNetwork
    _, path = exported_onnx
    net = load_restore_network(path)
    assert isinstance(net, OnnxRestoreNetwork)
    with pytest.raises(WeightsError, match='restoration only'):
        net.recognise(image(16, 16))
    with pytest.raises(WeightsError, match='upscale 2 was asked for'):
        load_restore_network(path, upscale=2)
    with pytest.raises(WeightsError, match='NDR-Degrad'):
        load_degrad_network(path)


def test_onnx_corrupt_or_foreign_file_is_named(exported_onnx, tmp_path):
    import onnx
    from onnx import TensorProto, helper
    _, path = exported_onnx
    cut = tmp_path / 'cut.onnx'
    cut.write_bytes(open(path, 'rb').read()[:5000])
    with pytest.raises(WeightsError, match=f'{cut} is not a loadable ONNX model'):
        load_restore_network(str(cut))
    foreign = tmp_path / 'identity.onnx'
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 8, 8]) for n in ('x', 'y')]
    graph = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'other', [io[0]], [io[1]])
    onnx.save(helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid('', 17)]), str(foreign))
    with pytest.raises(WeightsError, match=f'{foreign} is an ONNX model that ndrsr-export did not write'):
        load_restore_network(str(foreign))


# ----------------------------------------------------------------------------- spandrel
@pytest.fixture(scope='module')
def spandrel_loader():
    spandrel = pytest.importorskip('spandrel')
    import ndrsr.spandrel
    ndrsr.spandrel.install()
    assert ndrsr.spandrel.install() == []  # a second call adds nothing
    return spandrel.ModelLoader()


def _same_as_ndrsr(descriptor, net, h=45, w=61):
    x = image(h, w)
    with torch.no_grad():
        expected = net(x).clamp(0, 1)
    torch.testing.assert_close(descriptor(x), expected, rtol=0, atol=1e-6)


def test_spandrel_loads_the_shipped_model_and_recognises_its_global_residual(spandrel_loader, tmp_path):
    from ndrsr.lib.model_zoo import resolve_model
    files = resolve_model('small')
    net = load_restore_network(files.restore)
    assert net.global_residual
    sd = torch.load(files.restore, weights_only=True)['params']
    wrapped = tmp_path / 'ema.pth'  # BasicSR's layout: params_ema is the one to use
    torch.save({'params': {k: torch.zeros_like(v) for k, v in sd.items()}, 'params_ema': sd}, wrapped)
    for path in (files.restore, str(wrapped)):
        model = spandrel_loader.load_from_file(path)
        assert model.architecture.id == 'NDRRestore'
        assert (model.purpose, model.scale, model.size_requirements.multiple_of) == ('Restoration', 1, 8)
        assert 'global-residual' in model.tags
        _same_as_ndrsr(model, net)


def test_spandrel_loads_exported_safetensors_and_the_released_checkpoint(spandrel_loader, trained_folder,
                                                                         tmp_path, reference):
    from ndrsr.lib.export import export_safetensors, network_spec
    out = str(tmp_path / 'tiny.safetensors')
    export_safetensors(network_spec(str(trained_folder / 'net_g.pth')), out)
    _same_as_ndrsr(spandrel_loader.load_from_file(out), load_restore_network(out))
    released = tmp_path / 'model_L.pth'
    torch.save(reference['state_dict'], released)
    model = spandrel_loader.load_from_file(str(released))
    assert model.architecture.id == 'NDRRestore' and 'global-residual' not in model.tags
    _same_as_ndrsr(model, load_restore_network(str(released)), 40, 48)


def test_spandrel_leaves_other_networks_alone(spandrel_loader, trained_folder):
    import spandrel
    with pytest.raises(spandrel.UnsupportedModelError):
        spandrel_loader.load_from_file(str(trained_folder / 'net_degrad.pth'))


# ----------------------------------------------------------------------------- bf16 on the CPU
def test_bf16_on_the_cpu_is_refused_with_the_reason_where_unsupported(monkeypatch):
    import ndrsr.lib.tiling as tiling
    monkeypatch.setattr(tiling, 'cpu_bf16_support', lambda: (False, 'this CPU has no native bf16 instructions'))
    with pytest.raises(ValueError, match='no native bf16 instructions') as err:
        tiling.resolve_precision('bf16', torch.device('cpu'))
    assert err.value.argument == 'precision'
    with pytest.raises(ValueError, match='needs a CUDA device'):
        tiling.resolve_precision('fp16', torch.device('cpu'))
    monkeypatch.setattr(tiling, 'cpu_bf16_support', lambda: (True, 'the CPU has amx_bf16'))
    assert tiling.resolve_precision('bf16', torch.device('cpu')) == torch.bfloat16
    assert tiling.resolve_precision('auto', torch.device('cpu')) == torch.float32


def test_bf16_restores_on_a_cpu_that_has_it():
    from ndrsr.lib.cpu_features import cpu_bf16_support
    from ndrsr.lib.tiling import tile_forward
    supported, reason = cpu_bf16_support()
    if not supported:
        pytest.skip(reason)
    net = NDRRestore(**SMALL_RESTORE, global_residual=True).eval()
    x = image(40, 56)
    fp32, bf16 = tile_forward(net, x, precision='fp32'), tile_forward(net, x, precision='bf16')
    assert bf16.dtype == torch.float32 and not torch.equal(fp32, bf16)  # it really ran in bf16
    assert (fp32 - bf16).abs().max() < 0.05

