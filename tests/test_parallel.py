"Multi-process checks of `medvlm.parallel` (FSDP2, pipeline) under torchrun, and the accelerate configs read by accelerate itself."
import json
from pathlib import Path
import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import launch_command_parser, _validate_launch_command
from accelerate.utils import DeepSpeedPlugin, DistributedType, FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env
from conftest import BIN, launch

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parent/'configs'/'accelerate'

@pytest.fixture(scope='module')
def checks(tmp_path_factory):
    "One torchrun launch (2 gloo processes) of parallel_checks.py; what rank 0 wrote."
    out = tmp_path_factory.mktemp('parallel')/'checks.json'
    launch([BIN/'torchrun', '--standalone', '--nproc_per_node', '2', HERE/'parallel_checks.py', out], OMP_NUM_THREADS='1')
    return json.loads(out.read_text())

def test_fsdp_matches_single_process(checks):
    "Sharded over 2 ranks with the loss on gathered embeddings, 3 AdamW steps land where 1 process on the whole batch does."
    f = checks['fsdp']
    assert f['world'] == 2 and f['steps'] == 3 and f['n_params'] > 50
    assert f['global_max_loss_diff'] < 1e-5 and f['global_max_param_diff'] < 1e-5, f
    assert f['global_key_bias_max_diff'] <= f['steps'] * f['lr'] * 1.01, f  # zero true gradient: AdamW steps on noise
    assert f['max_param_change'] > 100 * f['global_max_param_diff'], f  # the steps did move the parameters

def test_fsdp_local_loss_differs(checks):
    "The control: each rank's loss over its own pairs only is another objective, and the check sees it."
    f = checks['fsdp']
    assert f['local_max_loss_diff'] > 0.1 and f['local_max_param_diff'] > 100 * f['global_max_param_diff'], f

def test_pipeline_matches_unsplit(checks):
    "Two stages, four micro-batches, one training step: the unsplit model's logits, loss and every gradient."
    p = checks['pipeline']
    assert p['world'] == 2 and p['stage_blocks'] == 2 and p['n_microbatches'] == 4
    assert p['params_with_grad'] == p['n_params'], p  # every parameter got its gradient on exactly one stage
    assert p['logits_max_diff'] < 1e-5 and p['loss_diff'] < 1e-5 and p['grad_max_diff'] < 1e-6, p

def launch_env(path) -> tuple:
    "The parsed launch arguments and the environment `accelerate launch --config_file path` gives its workers."
    args, defaults, mp_from_config = _validate_launch_command(launch_command_parser().parse_args(['--config_file', str(path), 'train.py']))
    if args.use_fsdp: return args, prepare_multi_gpu_env(args)
    if args.use_deepspeed:  # what accelerate's launch_command sets before calling its DeepSpeed launcher
        args.deepspeed_fields_from_accelerate_config = ','.join([*defaults.deepspeed_config, *(['mixed_precision'] if mp_from_config else [])])
        return args, prepare_deepspeed_cmd_env(args)[1]
    return args, prepare_multi_gpu_env(args)

@pytest.mark.parametrize('path', sorted(CONFIGS.glob('*.yaml')), ids=lambda p: p.name)
def test_accelerate_config_parses(path):
    "Every shipped config loads through accelerate's own config parser and launch-argument validation."
    cfg = load_config_from_file(str(path))
    assert cfg.compute_environment.value == 'LOCAL_MACHINE' and cfg.num_processes >= 1
    args, env = launch_env(path)
    assert env['ACCELERATE_MIXED_PRECISION'] == cfg.mixed_precision

def test_fsdp_config(monkeypatch):
    "fsdp.yaml becomes an FSDP2 plugin that wraps each CLIP encoder layer and saves sharded checkpoints."
    cfg = load_config_from_file(str(CONFIGS/'fsdp.yaml'))
    assert cfg.distributed_type == DistributedType.FSDP
    for k, v in launch_env(CONFIGS/'fsdp.yaml')[1].items(): monkeypatch.setenv(k, v)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.transformer_cls_names_to_wrap == ['CLIPEncoderLayer']
    assert plugin.state_dict_type.name == 'SHARDED_STATE_DICT'

@pytest.mark.parametrize('stage', [2, 3])
def test_deepspeed_config(stage, monkeypatch):
    "The ZeRO configs become accelerate DeepSpeed plugins with the right stage (DeepSpeed itself is not needed for this)."
    path = CONFIGS/f'deepspeed_zero{stage}.yaml'
    assert load_config_from_file(str(path)).distributed_type == DistributedType.DEEPSPEED
    for k, v in launch_env(path)[1].items(): monkeypatch.setenv(k, v)
    ds = DeepSpeedPlugin().deepspeed_config
    assert ds['zero_optimization']['stage'] == stage and ds['gradient_clipping'] == 1.0
    assert ds['zero_optimization']['stage3_gather_16bit_weights_on_model_save'] == (stage == 3)
