"""Weights files -> networks: what a file holds, where the network sizes come from, build and load.

The command-line tools, the model zoo and user code build networks from
weights files through this module (the model's validation runs the network it
trains; the image tiling is :mod:`ndrsr.lib.tiling`).

What a file may hold (:func:`read_weights`)
    A BasicSR checkpoint ``{'params_ema': sd}`` / ``{'params': sd}``
    (``params_ema`` preferred), a plain state dict, or the released NDR-Restore
    checkpoint (converted on the fly by :mod:`ndrsr.lib.convert`). Always loaded
    with ``weights_only=True`` (:func:`ndrsr.lib.checkpoint.load_checkpoint`).
Where the sizes come from (:func:`network_options`), in order
    ``opt_path`` (a BasicSR options YAML, its ``network_g`` /
    ``network_degrad``), ``network_options.yml`` next to the weights, the
    options YAML BasicSR copies into the experiment folder (``../*.yml`` of
    ``experiments/<name>/models/``), the released checkpoint's own shapes,
    and finally the shapes of the state dict itself
    (:func:`ndrsr.lib.checkpoint.infer_restore_options`).
Building (:func:`load_restore_network`, :func:`load_degrad_network`)
    The network is built from those options and loaded strictly; a state
    dict that does not fit is a :class:`WeightsError` naming the keys.

Errors are :class:`WeightsError` (a ValueError) or FileNotFoundError; their
``argument`` attribute names the parameter the fix concerns, which the
command-line tools turn into their flag.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, field
from os import path as osp
from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from ndrsr.lib.checkpoint import (WeightsError, find_state_dict, infer_degrad_options, infer_restore_options,
                              is_state_dict, load_checkpoint, state_dict_problems, strip_module_prefix)
from ndrsr.lib.convert import convert_released, is_released
from ndrsr.lib.onnx_runtime import is_onnx_path
from ndrsr.lib.safetensors_file import is_safetensors_path, read_networks

CHECKPOINT_KEYS = ('params_ema', 'params', 'state_dict')  # where a BasicSR / plain checkpoint keeps its state dict


@dataclass
class LoadedWeights:
    """What a weights file provides.

    restore / degrad: state dicts of NDRRestore / NDRDegrad (None if absent).
    options: ``{'network_g': {...}, 'network_degrad': {...}}`` known from the
        file itself (the released checkpoint, an ndrsr safetensors file), else empty.
    source: a description for messages, e.g. ``"x.pth [params_ema]"``.
    embedded: the options are the file's own record of how the networks were
        built (ndrsr safetensors, ndrsr training checkpoints): they come before any options file beside it.
    """
    restore: Optional[Dict[str, torch.Tensor]]
    degrad: Optional[Dict[str, torch.Tensor]]
    options: dict = field(default_factory=dict)
    source: str = ''
    embedded: bool = False


def _which_network(sd: Mapping[str, torch.Tensor]) -> Optional[str]:
    """'restore' or 'degrad' for a bare state dict (NDRDegrad's encoders are conv pairs), else None."""
    if any(k.startswith('encoder1.conv1.') for k in sd):
        return 'degrad'
    if any(k.startswith('encoder1.0.') for k in sd):
        return 'restore'
    return None


def read_weights(path: str) -> LoadedWeights:
    """Load ``path`` (weights_only=True) and sort out what it holds; see :class:`LoadedWeights`.

    Raises:
        FileNotFoundError: no such file.
        WeightsError: not a checkpoint of NDR-Restore / NDR-Degrad.

    A ``.safetensors`` file is read with :mod:`ndrsr.lib.safetensors_file`
    (tensors and strings only), with the options its metadata records.
    """
    if is_safetensors_path(path):
        restore, degrad, options = read_networks(path)
        return LoadedWeights(restore, degrad, options, f'{path} [safetensors]', embedded='network_g' in options)
    if is_onnx_path(path):
        raise WeightsError(f'{path} is an ONNX export: it runs NDR-Restore through onnxruntime '
                           f'(load_restore_network) but holds no PyTorch weights.', argument='weights')
    obj = load_checkpoint(path)
    if is_released(obj):
        try:
            restore, degrad, options = convert_released(obj)
        except ValueError as err:
            raise WeightsError(f'{path}: looks like the released NDR-Restore checkpoint but cannot be converted: '
                               f'{err}', argument='weights') from None
        return LoadedWeights(restore, degrad, options, f'{path} [released, converted on the fly]')
    found, keys = find_state_dict(obj, is_state_dict, CHECKPOINT_KEYS, depth=1)
    if found is None:
        raise WeightsError(f'{path}: not a network checkpoint (expected a BasicSR checkpoint with "params_ema" or '
                           f'"params", a state dict, or the released NDR-Restore .pth).', argument='weights')
    sd = dict(strip_module_prefix(found))
    source = f'{path} [{keys[0]}]' if keys else path
    kind = _which_network(sd)
    if kind is None:
        raise WeightsError(f'{path}: the state dict is neither NDRRestore nor NDRDegrad (first keys: '
                           f'{list(sd)[:5]}).', argument='weights')
    options = recorded_options(obj)
    if kind == 'restore':
        return LoadedWeights(sd, None, options, source, embedded=bool(options))
    return LoadedWeights(None, sd, options, source, embedded=bool(options))


def recorded_options(checkpoint) -> dict:
    """The ``network_options`` an ndrsr training checkpoint records (``{'network_g': {...}}``), else {}."""
    recorded = checkpoint.get('network_options') if isinstance(checkpoint, Mapping) else None
    if not isinstance(recorded, Mapping):
        return {}
    return {k: dict(v) for k, v in recorded.items() if k in ('network_g', 'network_degrad') and isinstance(v, Mapping)}


def degrad_weights_next_to(restore_weights: str) -> Optional[str]:
    """The NDR-Degrad checkpoint saved beside an NDR-Restore one, if any.

    ``net_g_latest.pth`` -> ``net_degrad_latest.pth``, ``net_g_5000.pth`` ->
    ``net_degrad_5000.pth``, ``net_g.pth`` -> ``net_degrad.pth``.
    """
    folder, name = osp.split(restore_weights)
    if name.startswith('net_g'):
        candidate = osp.join(folder, 'net_degrad' + name[len('net_g'):])
        if osp.isfile(candidate):
            return candidate
    return None


def _yaml_section(path: str, section: str, argument: Optional[str] = None) -> Optional[dict]:
    import yaml
    with open(path) as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as err:
            where = getattr(err, 'problem_mark', None)
            at = f' (line {where.line + 1}, column {where.column + 1})' if where is not None else ''
            problem = getattr(err, 'problem', None) or err
            raise WeightsError(f'options file {path} is not valid YAML{at}: {problem}. Fix the file.',
                               argument=argument) from None
    if isinstance(data, Mapping) and isinstance(data.get(section), Mapping):
        return dict(data[section])
    return None


def network_options(section: str, weights_path: str, opt_path: Optional[str] = None,
                    loaded: Optional[LoadedWeights] = None) -> Tuple[dict, str]:
    """The options of ``section`` ('network_g' or 'network_degrad') for ``weights_path``.

    Returns (options without 'type', where they came from). Order: ``opt_path``,
    ``network_options.yml`` next to the weights, the BasicSR experiment's
    options YAML (``<weights dir>/../*.yml``), the released checkpoint's
    shapes, the state dict's shapes.
    """
    if opt_path:
        if not osp.isfile(opt_path):
            err = FileNotFoundError(f'options file {opt_path}: no such file')
            err.argument = 'opt_path'
            raise err
        opt = _yaml_section(opt_path, section, 'opt_path')
        if opt is None:
            raise WeightsError(f'options file {opt_path} has no {section!r} section; give the options YAML the '
                               f'network was trained with.', argument='opt_path')
        return opt, opt_path
    if loaded is not None and loaded.embedded and section in loaded.options:
        return dict(loaded.options[section]), f'{weights_path} (its metadata)'
    folder = osp.dirname(osp.abspath(weights_path))
    candidates = [osp.join(folder, 'network_options.yml')]
    if osp.basename(folder) == 'models':  # experiments/<name>/models/net_g_*.pth
        candidates += sorted(glob.glob(osp.join(osp.dirname(folder), '*.yml')))
    for cand in candidates:
        if osp.isfile(cand):
            opt = _yaml_section(cand, section)
            if opt is not None:
                return opt, cand
    if loaded is not None and section in loaded.options:
        return dict(loaded.options[section]), f'{weights_path} (released checkpoint shapes)'
    if loaded is not None:
        sd = loaded.restore if section == 'network_g' else loaded.degrad
        if sd is not None:
            infer = infer_restore_options if section == 'network_g' else infer_degrad_options
            return infer(sd), f'{weights_path} (inferred from the tensor shapes)'
    return {}, 'defaults (the released network size)'


def build_and_load(net_cls: type, opt: dict, sd: Mapping[str, torch.Tensor], source: str = 'the state dict',
                  opt_source: str = 'the options') -> nn.Module:
    """``net_cls(**opt)`` (``type`` ignored) with ``sd`` loaded strictly; a clear WeightsError if it does not fit
    or holds NaN / infinite values."""
    opt = {k: v for k, v in opt.items() if k != 'type'}
    try:
        net = net_cls(**opt)
    except TypeError as err:
        raise WeightsError(f'the {net_cls.__name__} options from {opt_source} are not valid: {err}',
                           argument='opt_path') from None
    non_finite = [k for k, v in sd.items() if torch.is_tensor(v) and v.is_floating_point() and
                  not bool(torch.isfinite(v).all())]
    if non_finite:
        raise WeightsError(f'{source}: {len(non_finite)} of its tensors hold NaN or infinite values (e.g. '
                           f'{non_finite[:3]}): the training diverged or the file is damaged. Use an earlier '
                           f'checkpoint.', argument='weights')
    problems = state_dict_problems(net, sd)
    if problems:
        raise WeightsError(f'{source} does not fit {net_cls.__name__}({opt}) (options from {opt_source}): '
                           + '; '.join(problems) + '. Give the options the network was trained with.',
                           argument='opt_path')
    net.load_state_dict(sd, strict=True)
    return net


def load_restore_network(weights: str, opt_path: Optional[str] = None, device: str | torch.device = 'cpu',
                         upscale: Optional[int] = None) -> nn.Module:
    """Build NDRRestore from ``weights`` and return it in eval mode on ``device``.

    Args:
        weights: BasicSR checkpoint (params_ema preferred), plain state dict,
            the released checkpoint, an ndrsr ``.safetensors`` file, or an
            ``.onnx`` export (then an :class:`~ndrsr.lib.onnx_runtime.OnnxRestoreNetwork`
            running it through onnxruntime is returned).
        opt_path: optional BasicSR options YAML (its ``network_g``; not for ONNX).
        device: where to put the network.
        upscale: if given, the network must have this ``upscale`` (a clear
            error otherwise).

    The returned module is the plain network; wrap it with
    :func:`ndrsr.archs.fast_path.prepare_for_inference` under
    ``torch.inference_mode()`` to run it (the functions of :mod:`ndrsr.lib.tiling`
    do that).
    """
    from ndrsr.archs import NDRRestore

    if is_onnx_path(weights):
        if opt_path:
            raise WeightsError(f'{weights} is an ONNX export: it knows its network, so options do not apply.',
                               argument='opt_path')
        from ndrsr.lib.onnx_runtime import load_onnx_restore
        return load_onnx_restore(weights, device, upscale=upscale)
    loaded = read_weights(weights)
    if loaded.restore is None:
        raise WeightsError(f'{weights} holds NDR-Degrad weights; the NDR-Restore checkpoint (net_g_*.pth) is '
                           f'needed here.', argument='weights')
    opt, opt_source = network_options('network_g', weights, opt_path, loaded)
    net = build_and_load(NDRRestore, opt, loaded.restore, loaded.source, opt_source)
    if upscale is not None and int(upscale) != net.upscale:
        raise WeightsError(f'upscale {upscale} was asked for, but the network in {weights} restores at upscale '
                           f'{net.upscale}. Use weights trained for {upscale}x.', argument='upscale')
    return net.eval().to(device)


def load_degrad_network(weights: str, opt_path: Optional[str] = None,
                        device: str | torch.device = 'cpu') -> nn.Module:
    """Build NDRDegrad and return it in eval mode on ``device``.

    ``weights`` may be the NDR-Degrad checkpoint itself, the released
    checkpoint (both networks inside), an ndrsr ``.safetensors`` file holding
    both, or the NDR-Restore checkpoint ``net_g*.pth`` with its
    ``net_degrad*.pth`` beside it.
    """
    from ndrsr.archs import NDRDegrad

    if is_onnx_path(weights):
        raise WeightsError(f'{weights} is an ONNX export of NDR-Restore alone; NDR-Degrad needs the PyTorch '
                           f'weights: the .safetensors export (ndrsr-export --format safetensors) or the .pth.',
                           argument='weights')
    loaded = read_weights(weights)
    path = weights
    if loaded.degrad is None:
        sibling = degrad_weights_next_to(weights)
        if sibling is None:
            raise WeightsError(f'{weights} holds no NDR-Degrad weights and no net_degrad*.pth lies beside it. '
                               f'Give the NDR-Degrad checkpoint (net_degrad_*.pth, saved with the training run) '
                               f'or the released checkpoint.', argument='degrad_weights')
        path, loaded = sibling, read_weights(sibling)
        if loaded.degrad is None:
            raise WeightsError(f'{sibling} does not hold NDR-Degrad weights.', argument='degrad_weights')
    opt, opt_source = network_options('network_degrad', path, opt_path, loaded)
    return build_and_load(NDRDegrad, opt, loaded.degrad, loaded.source, opt_source).eval().to(device)


__all__ = ['WeightsError', 'LoadedWeights', 'read_weights', 'degrad_weights_next_to', 'network_options',
           'infer_restore_options', 'infer_degrad_options', 'build_and_load', 'load_restore_network',
           'load_degrad_network']
