"""NDRModel: bidirectional training of NDR-Restore with NDR-Degrad on BasicSR.

Options (see options/train_demo.yml for a commented example of every key):

    model_type: NDRModel
    network_g:      {type: NDRRestore, ...}   # restoration network (owns the NDR)
    network_degrad: {type: NDRDegrad, ...}    # degradation network (not needed for restore_only)
    path:
      pretrain_network_g / param_key_g / strict_load_g
      pretrain_network_degrad / param_key_degrad / strict_load_degrad
    train:
      schedule: joint | alternating | restore_only      (default joint, as released)
      pixel_opt:  restoration loss, e.g. {type: L1Loss, loss_weight: 1.0}   (lambda_restore)
      degrad_opt: degradation loss, e.g. {type: L1Loss, loss_weight: 1.0}   (lambda_degrad)
      optim_g:      optimizer of NDRRestore (Adam 1e-4, weight decay 1e-8, as released)
      optim_degrad: optimizer of the degradation step (defaults to a copy of optim_g)
      grad_clip: max gradient norm (10 as released; 0 or ~ disables)
      fast_path: train through ndrsr.archs.fast_path.prepare_for_training views
                 (default true; same numbers, faster; false = the networks as written)
      autocast: ~ (default: float32) | bf16: forward passes and losses under torch.autocast(bfloat16),
                 float32 weights, gradients and optimizer state; on a CPU only where it has native bf16
                 (AMX / AVX512-BF16), refused elsewhere
      scheduler, warmup_iter, ema_decay, total_iter: as in BasicSR
    val:
      metrics: BasicSR metrics (psnr / ssim with test_y_channel for the Y variants)
      input_metrics: also report the metrics of the degraded input (default true)
      tile, tile_overlap: tiled validation for large images (0 = whole image)

The schedules, exactly:

* ``joint`` (the released code): one forward of both networks, one backward of
  ``lambda_degrad * L(degrad(gt, U), lq) + lambda_restore * L(restore(lq), gt)``;
  the gradient is clipped over both networks together, then both optimizers
  step. U is not detached: the degradation loss reaches the NDR, the degradation
  queries and the whole encoder of NDR-Restore.
* ``alternating`` (the paper's description): every iteration has two steps on
  the same batch. (1) Restoration step: ``L_restore`` only; ``optim_g`` updates
  every NDR-Restore parameter (NDR included). (2) Degradation step: U is
  recomputed with the updated NDR-Restore, its encoder trunk run without
  gradient (the features are detached before the query), so ``L_degrad`` trains
  NDR-Degrad, the NDR tensor and the degradation queries (DQ) only;
  ``optim_degrad`` holds exactly those parameters.
* ``restore_only`` (the paper's "w/o strategy" ablation): ``L_restore`` only; no
  degradation network is built and the NDR never sees a degradation loss.

Fast path: with ``train.fast_path`` (default) ``net_g`` and ``net_degrad`` are the
parameter-sharing training views of :mod:`ndrsr.archs.fast_path` (wrapped by
DDP when distributed, so gradient synchronisation sees the view's forward).
Their ``state_dict`` keys, parameters and checkpoints are exactly those of the
plain networks; ``net_g_ema`` and validation use the plain network (validation
through ``prepare_for_inference``).

Attributes: ``net_g`` / ``net_g_ema`` / ``optimizer_g`` (NDR-Restore), ``net_degrad`` / ``optimizer_degrad``
(NDR-Degrad and the degradation step; in BasicSR ``net_d`` means a discriminator). Option keys and
checkpoint names: ``network_degrad``, ``optim_degrad``, ``pretrain_network_degrad``, ``net_degrad_<iter>.pth``;
training states store the optimizers by position, so older states resume as before.

Checkpoints: ``net_g_<iter>.pth`` (``params`` + ``params_ema``),
``net_degrad_<iter>.pth``, ``<iter>.state`` (both optimizers, schedulers, iter),
each written atomically, the state last, so a resume always finds a complete set.
A non-finite loss stops training before any parameter or checkpoint changes.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from collections import OrderedDict
from collections.abc import Mapping
from copy import deepcopy
from os import path as osp

import torch
import torch.distributed as dist
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.metrics import calculate_metric
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn.utils import clip_grad_norm_
from tqdm import tqdm

from ndrsr.archs.fast_path import prepare_for_inference, prepare_for_training
from ndrsr.glue.options_check import SCHEDULES
from ndrsr.glue.resume import resume_training
from ndrsr.lib.checkpoint import atomic_torch_save, load_checkpoint, strip_module_prefix
from ndrsr.models.precision import training_autocast_dtype

# checkpoint label -> the options section that built the network (recorded in the checkpoint)
NETWORK_SECTIONS = {'net_g': 'network_g', 'net_degrad': 'network_degrad'}


@MODEL_REGISTRY.register()
class NDRModel(SRModel):
    """NDR-Restore + NDR-Degrad with the joint / alternating / restore_only schedules."""

    def __init__(self, opt):
        train_opt = opt.get('train') or {}
        self.schedule = train_opt.get('schedule', 'joint') if opt['is_train'] else 'restore_only'
        if self.schedule not in SCHEDULES:
            raise ValueError(f'train.schedule must be one of {SCHEDULES}, got {self.schedule!r}')
        if opt['is_train'] and self.schedule == 'alternating' and opt.get('dist'):
            # The degradation step uses only the NDR and the queries of net_g.
            opt['find_unused_parameters'] = True
        self.train_fast_path = bool(opt['is_train'] and train_opt.get('fast_path', True))
        super().__init__(opt)  # builds, wraps and loads net_g; calls init_training_settings when training
        if self.is_train:
            self._remove_partial_checkpoints()

    # ------------------------------------------------------------------ set-up
    def model_to_device(self, net):
        """Move to the device; with ``train.fast_path`` swap in the training view *before* any DDP wrap."""
        if self.train_fast_path:
            net = prepare_for_training(net.to(self.device))  # buffers move before the view shares them
        return super().model_to_device(net)

    def init_training_settings(self):
        train_opt = self.opt['train']
        logger = get_root_logger()
        if self.schedule != 'restore_only':
            if self.opt.get('network_degrad') is None:
                raise ValueError(f'train.schedule={self.schedule!r} needs a network_degrad (type: NDRDegrad) '
                                 f'in the options; use schedule: restore_only to train without it.')
            self.net_degrad = self.model_to_device(build_network(self.opt['network_degrad']))
            self.print_network(self.net_degrad)
            load_path = self.opt['path'].get('pretrain_network_degrad')
            if load_path is not None:
                self.load_network(self.net_degrad, load_path, self.opt['path'].get('strict_load_degrad', True),
                                  self.opt['path'].get('param_key_degrad', 'params'))
            self.net_degrad.train()
            if train_opt.get('degrad_opt') is None:
                raise ValueError('train.degrad_opt (the degradation loss, e.g. {type: L1Loss, loss_weight: 1.0}) '
                                 f'is required for schedule {self.schedule!r}.')
            self.cri_degrad = build_loss(deepcopy(train_opt['degrad_opt'])).to(self.device)
        elif self.opt.get('network_degrad') is not None:
            logger.info('schedule restore_only: network_degrad is not built (no degradation loss).')
        self.grad_clip = train_opt.get('grad_clip') or 0
        self.autocast_dtype = training_autocast_dtype(train_opt.get('autocast'), self.device)
        super().init_training_settings()  # EMA, pixel loss, optimizers (setup_optimizers), schedulers

    def setup_optimizers(self):
        train_opt = self.opt['train']
        net_g = self.get_bare_model(self.net_g)
        optim_g = deepcopy(train_opt['optim_g'])
        self.optimizer_g = self.get_optimizer(optim_g.pop('type'), [p for p in net_g.parameters() if p.requires_grad],
                                              **optim_g)
        self.optimizers = [self.optimizer_g]
        if self.schedule == 'restore_only':
            return
        net_degrad = self.get_bare_model(self.net_degrad)
        degrad_params = [p for p in net_degrad.parameters() if p.requires_grad]
        if self.schedule == 'alternating':
            degrad_params += self.recognition_parameters()
        optim_degrad = deepcopy(train_opt.get('optim_degrad') or train_opt['optim_g'])
        self.optimizer_degrad = self.get_optimizer(optim_degrad.pop('type'), degrad_params, **optim_degrad)
        self.optimizers.append(self.optimizer_degrad)

    def recognition_parameters(self):
        """The NDR tensor and the degradation-query parameters of net_g."""
        net_g = self.get_bare_model(self.net_g)
        ndr = list(net_g.ndr.parameters()) if net_g.ndr is not None else []
        return ndr + list(net_g.query.parameters())

    # ---------------------------------------------------------------- training
    def feed_data(self, data):
        super().feed_data(data)
        self.tasks = data.get('task')
        self.lq_paths = data.get('lq_path')

    def optimize_parameters(self, current_iter):
        if self.schedule == 'alternating':
            loss_dict = self._restoration_step(current_iter)
            loss_dict.update(self._degradation_step(current_iter))
        else:
            loss_dict = self._joint_step(current_iter)
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _joint_step(self, current_iter):
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss_dict = OrderedDict()
        with self._autocast():
            if self.schedule == 'joint':
                self.output, degradations = self.net_g(self.lq, return_degradation=True)
                l_degrad = self.cri_degrad(self.net_degrad(self.gt, degradations).float(), self.lq)
                loss_dict['l_degrad'] = l_degrad
            else:
                self.output = self.net_g(self.lq)
                l_degrad = 0
            l_restore = self.cri_pix(self.output.float(), self.gt)
        loss_dict['l_restore'] = l_restore
        total = l_restore + l_degrad
        self._check_finite(total, loss_dict, current_iter)
        total.backward()
        params = [p for group in self.optimizers for g in group.param_groups for p in g['params']]
        self._clip(params)
        for optimizer in self.optimizers:
            optimizer.step()
        return loss_dict

    def _restoration_step(self, current_iter):
        self.optimizer_g.zero_grad(set_to_none=True)
        with self._autocast():
            self.output = self.net_g(self.lq)
            l_restore = self.cri_pix(self.output.float(), self.gt)
        self._check_finite(l_restore, {'l_restore': l_restore}, current_iter)
        l_restore.backward()
        self._clip([p for g in self.optimizer_g.param_groups for p in g['params']])
        self.optimizer_g.step()
        return OrderedDict(l_restore=l_restore)

    def _degradation_step(self, current_iter):
        self.optimizer_degrad.zero_grad(set_to_none=True)
        with self._autocast():
            degradations = self.net_g(self.lq, recognise_only=True)
            l_degrad = self.cri_degrad(self.net_degrad(self.gt, degradations).float(), self.lq)
        self._check_finite(l_degrad, {'l_degrad': l_degrad}, current_iter)
        l_degrad.backward()
        self._clip([p for g in self.optimizer_degrad.param_groups for p in g['params']])
        self.optimizer_degrad.step()
        return OrderedDict(l_degrad=l_degrad)

    def _autocast(self):
        """torch.autocast to ``train.autocast``'s dtype, or a no-op context for float32 training."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _clip(self, params):
        if self.grad_clip > 0:
            clip_grad_norm_([p for p in params if p.grad is not None], self.grad_clip)

    def _check_finite(self, total, loss_dict, current_iter):
        """Stop (on every rank) before a non-finite loss touches a parameter or a checkpoint."""
        finite = torch.isfinite(total.detach()).float()
        if self.opt.get('dist') and dist.is_available() and dist.is_initialized():
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if finite.item() == 1:
            return
        values = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in loss_dict.items()}
        models = self.opt['path'].get('models', '?')
        msg = (f'non-finite loss at iteration {current_iter} ({values}; tasks {self.tasks}; lq {self.lq_paths}). '
               f'Training stopped before the update; the last good checkpoint in {models} is untouched. '
               f'Lower train.optim_g.lr, enable train.grad_clip or train.warmup_iter, check these images, '
               f'then continue with --auto_resume.')
        get_root_logger().error(msg)
        raise FloatingPointError(msg)

    # ------------------------------------------------------------ checkpoints
    @master_only
    def _remove_partial_checkpoints(self):
        """Delete ``*.tmp-<pid>`` files left by a run killed while saving (never complete checkpoints)."""
        for key in ('models', 'training_states'):
            folder = self.opt['path'].get(key)
            if folder and osp.isdir(folder):
                for name in os.listdir(folder):
                    if re.search(r'\.(pth|state)\.tmp-\d+$', name):
                        os.remove(osp.join(folder, name))
                        get_root_logger().info(f'removed partial checkpoint {name} left by an interrupted save')

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """BasicSR's save_network, written atomically (never a truncated checkpoint).

        Besides the state dicts, the file records the network's options (``network_options``:
        ``{'network_g': {...}}`` or ``{'network_degrad': {...}}``, plain YAML types), so the checkpoint
        restores correctly wherever it is copied: options such as ``global_residual`` cannot be read from
        the tensor shapes. BasicSR's loader reads only the ``param_key`` entries.
        """
        current_iter = 'latest' if current_iter == -1 else current_iter
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        save_dict = {}
        for net_, key in zip(nets, keys):
            state = strip_module_prefix(self.get_bare_model(net_).state_dict())
            save_dict[key] = OrderedDict((k, v.cpu()) for k, v in state.items())
        section = NETWORK_SECTIONS.get(net_label)
        if section and isinstance(self.opt.get(section), Mapping):
            save_dict['network_options'] = {section: json.loads(json.dumps(dict(self.opt[section])))}
        atomic_torch_save(save_dict, osp.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth'))

    @master_only
    def save_training_state(self, epoch, current_iter):
        """BasicSR's save_training_state, written atomically."""
        if current_iter == -1:
            return
        state = {'epoch': epoch, 'iter': current_iter,
                 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers]}
        atomic_torch_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def save(self, epoch, current_iter):
        if hasattr(self, 'net_g_ema'):
            self.save_network([self.net_g, self.net_g_ema], 'net_g', current_iter, param_key=['params', 'params_ema'])
        else:
            self.save_network(self.net_g, 'net_g', current_iter)
        if hasattr(self, 'net_degrad'):
            self.save_network(self.net_degrad, 'net_degrad', current_iter)
        self.save_training_state(epoch, current_iter)  # last: a .state always has its networks

    def resume_training(self, resume_state):
        """BasicSR's resume_training; a scheduler whose options differ from the saved ones follows the options
        from the saved iteration on, with a log line (:func:`ndrsr.glue.resume.resume_training`)."""
        resume_training(self, resume_state)

    def load_network(self, net, load_path, strict=True, param_key='params'):
        """BasicSR's load_network with ``weights_only=True`` and clear errors."""
        logger = get_root_logger()
        net = self.get_bare_model(net)
        try:
            load_net = load_checkpoint(load_path)
        except FileNotFoundError as err:
            raise FileNotFoundError(f'{err} (path.pretrain_network_* in the options)') from None
        if param_key is not None:
            if param_key not in load_net and 'params' in load_net:
                logger.info(f'Loading: {param_key} does not exist in {load_path}, use params.')
                param_key = 'params'
            if param_key not in load_net:
                raise KeyError(f'{load_path} has no {param_key!r} entry (keys: {list(load_net)[:5]}). A released '
                               f'NDR-Restore checkpoint must be converted first: ndrsr-convert '
                               f'{load_path} OUT_DIR.')
            load_net = load_net[param_key]
        load_net = strip_module_prefix(load_net)
        logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
        self._print_different_keys_loading(net, load_net, strict)
        net.load_state_dict(load_net, strict=strict)

    # -------------------------------------------------------------- inference
    def _validation_net(self):
        """The network validation runs: ``net_g_ema`` when kept, else the bare ``net_g``."""
        return self.net_g_ema if hasattr(self, 'net_g_ema') else self.get_bare_model(self.net_g)

    def test(self):
        """``self.output`` = the validation network on ``self.lq``, through its optimised view (tiled with val.tile).

        Within :meth:`nondist_validation` the view is built once per validation run; a call on its own builds it.
        """
        net = self._validation_net()
        was_training = net.training
        val_opt = self.opt.get('val') or {}
        tile = val_opt.get('tile', 0) or 0
        with torch.inference_mode():
            fast = self._val_view if getattr(self, '_val_view_of', None) is net else prepare_for_inference(net)
            if tile:
                from ndrsr.lib.tiling import tile_forward
                self.output = tile_forward(fast, self.lq, tile=tile, overlap=val_opt.get('tile_overlap', 32))
            else:
                self.output = fast(self.lq)
        self.output = self.output.clone()
        net.train(was_training)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """Validate one dataset (= one task); after the last one, log the average over tasks."""
        dataset_name = dataloader.dataset.opt['name']
        val_opt = self.opt['val']
        metrics = val_opt.get('metrics') or {}
        with_input = val_opt.get('input_metrics', True)
        scale = self.opt.get('scale', 1)
        if metrics:
            self._initialize_best_metric_results(dataset_name)
        totals = {name: 0.0 for name in metrics}
        totals.update({f'{name}_input': 0.0 for name in metrics if with_input})
        pbar = tqdm(total=len(dataloader), unit='image', desc=dataset_name) if val_opt.get('pbar', True) else None
        count = 0
        net = self._validation_net()
        self._val_view, self._val_view_of = prepare_for_inference(net), net  # one view for the whole run (test())
        for val_data in dataloader:
            img_name = osp.splitext(osp.basename(val_data['lq_path'][0]))[0]
            self.feed_data(val_data)
            self.test()
            restored = tensor2img([self.output.detach().cpu()])
            if hasattr(self, 'gt'):
                gt = tensor2img([self.gt.detach().cpu()])
                for name, metric_opt in metrics.items():
                    totals[name] += calculate_metric({'img': restored, 'img2': gt}, metric_opt)
                    if with_input:
                        totals[f'{name}_input'] += calculate_metric({'img': self._input_at_gt_size(scale), 'img2': gt},
                                                                    metric_opt)
                del self.gt
            if save_img:
                suffix = val_opt.get('suffix') or (current_iter if self.opt['is_train'] else self.opt['name'])
                imwrite(restored, osp.join(self.opt['path']['visualization'], dataset_name, f'{img_name}_{suffix}.png'))
            del self.lq, self.output
            count += 1
            if pbar:
                pbar.update(1)
        if pbar:
            pbar.close()
        del self._val_view, self._val_view_of
        if not metrics or count == 0:
            return
        self.metric_results = {k: v / count for k, v in totals.items()}
        for name in metrics:
            self._update_best_metric_result(dataset_name, name, self.metric_results[name], current_iter)
        self._log_validation_metric_values(current_iter, dataset_name, tb_logger)
        self._record_task_result(dataset_name, current_iter, tb_logger)

    def _input_at_gt_size(self, scale):
        lq = self.lq.detach().cpu()
        if scale > 1:
            lq = torch.nn.functional.interpolate(lq, scale_factor=scale, mode='bicubic', align_corners=False)
        return tensor2img([lq])

    def _log_validation_metric_values(self, current_iter, dataset_name, tb_logger):
        task = getattr(self, 'tasks', None)
        task = task[0] if isinstance(task, (list, tuple)) and task else task
        parts = []
        for name, value in self.metric_results.items():
            if name.endswith('_input'):
                continue
            part = f'{name}: {value:.4f}'
            if f'{name}_input' in self.metric_results:
                part += f' (input {self.metric_results[name + "_input"]:.4f})'
            best = self.best_metric_results[dataset_name][name]
            part += f' best {best["val"]:.4f} @ {best["iter"]}'
            parts.append(part)
        get_root_logger().info(f'Validation [{dataset_name}] task={task} iter {current_iter}: ' + ' | '.join(parts))
        if tb_logger:
            for name, value in self.metric_results.items():
                tb_logger.add_scalar(f'metrics/{dataset_name}/{name}', value, current_iter)

    def _record_task_result(self, dataset_name, current_iter, tb_logger):
        """Collect per-task results; once every val dataset reported at this iteration, log the average."""
        n_val = sum(1 for k in self.opt['datasets'] if k.startswith('val') or k.startswith('test'))
        if getattr(self, '_task_results_iter', None) != current_iter:
            self._task_results_iter, self._task_results = current_iter, OrderedDict()
        self._task_results[dataset_name] = dict(self.metric_results)
        if len(self._task_results) < n_val or n_val < 2:
            return
        names = list(next(iter(self._task_results.values())))
        average = {name: sum(r[name] for r in self._task_results.values()) / len(self._task_results) for name in names}
        self._initialize_best_metric_results('average')
        for name in self.opt['val']['metrics']:
            self._update_best_metric_result('average', name, average[name], current_iter)
        self.metric_results = average
        self.tasks = 'all'
        self._log_validation_metric_values(current_iter, 'average', tb_logger)

