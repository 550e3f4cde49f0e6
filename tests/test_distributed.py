"Data parallelism with 2 gloo processes on the CPU: loss, gradients, evaluation and training steps equal the single-process ones."
import json
import pytest
from medvlm.clip import load_clip
from medvlm.retrieval import RetrievalCallback, RETRIEVAL_KEYS
from medvlm.train import clip_learner
from medvlm.distributed import launch_command
from conftest import BIN, ROOT, launch, run_cli
import dist_checks

@pytest.fixture(scope='module')
def two_procs(tmp_path_factory):
    "One `torchrun --nproc_per_node 2` run of every check in dist_checks.py; its results and output folder."
    out = tmp_path_factory.mktemp('dist')
    launch([BIN/'torchrun', '--standalone', '--nproc_per_node', '2', ROOT/'tests'/'dist_checks.py', out], OMP_NUM_THREADS='1')
    return json.loads((out/'results.json').read_text()), out

@pytest.mark.parametrize('variant', ['loss_global', 'loss_local'])
def test_loss_and_gradients_equal_the_global_batch(two_procs, variant):
    r = two_procs[0][variant]
    assert two_procs[0]['world'] == 2
    assert r['loss'] == pytest.approx(r['ref_loss'], abs=1e-6)
    assert r['grad_err'] < 1e-6
    assert r['scale_grad'] == pytest.approx(r['ref_scale_grad'], abs=1e-6)
    if variant == 'loss_local': assert abs(r['losses'][0] - r['losses'][1]) > 1e-3  # each rank really computed only its rows
    else: assert r['losses'][0] == r['losses'][1]

def test_sharded_evaluation_equals_one_process(two_procs):
    "37 validation pairs over 2 ranks (uneven shards, padded by fastai): gathered metrics == single-process metrics."
    res, out = two_procs
    model, _ = load_clip(out/'eval_model')
    learn = clip_learner(dist_checks.valid_dls(), model, precision='fp32')
    learn.validate()
    ref = learn.cbs.filter(lambda c: isinstance(c, RetrievalCallback))[0].results
    assert res['eval'] == ref
    assert 0 < ref['t2i_r10'] < 1  # not a degenerate ranking

def test_ddp_steps_equal_global_batch_steps(two_procs):
    "3 DDP steps on halves of each global batch reach the parameters of 3 single-process steps on the whole batches."
    res, out = two_procs
    assert res['steps']['steps'] == 3
    batches, tok = dist_checks.global_batches()
    learn = dist_checks.steps_learner(batches, tok)
    start = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn.fit(1, 1e-3)
    ddp = load_clip(out/'ddp_model')[0].state_dict()
    ref = learn.model.state_dict()
    moved = max((ref[k] - start[k]).abs().max().item() for k in ref)
    diff = max((ref[k] - ddp[k]).abs().max().item() for k in ref)
    assert moved > 1e-3 and diff < 1e-5, (moved, diff)

def test_each_epoch_is_shuffled_and_split_across_ranks(two_procs):
    (r0_e1, r0_e2), (r1_e1, r1_e2) = two_procs[0]['sampler']
    for a, b in ((r0_e1, r1_e1), (r0_e2, r1_e2)): assert not set(a) & set(b) and set(a) | set(b) == set(range(20))
    assert r0_e1 + r1_e1 != r0_e2 + r1_e2

def test_accelerate_launch_trains_and_eval_reproduces(tmp_path):
    "The CLI under `accelerate launch` (2 CPU processes): its final metrics equal `medvlm_eval_clip` in one process."
    out = tmp_path/'run'
    launch(launch_command(2, ['--data', 'synthetic:256', '--epochs', 2, '--bs', 32, '--out', out]))
    m = json.loads((out/'metrics.json').read_text())
    assert (m['world_size'], m['global_bs'], m['epochs']) == (2, 64, 2)
    assert len(m['data_wait']) == 2 and all(w['bound'] in ('data', 'compute') for w in m['data_wait'])
    run_cli('medvlm_eval_clip', '--model', out/'model', '--data', 'synthetic:256', '--split', 'valid', '--out', tmp_path/'eval')
    ev = json.loads((tmp_path/'eval'/'metrics.json').read_text())
    assert ev['n_val'] == m['n_val']
    assert {k: ev[k] for k in RETRIEVAL_KEYS} == {k: m['final'][k] for k in RETRIEVAL_KEYS}

def test_torchrun_trains_on_shards_with_local_loss(tmp_path):
    "webdataset shards written by medvlm_make_shards, read by 2 torchrun processes (each epoch reshuffled across ranks)."
    run_cli('medvlm_make_shards', '--data', 'synthetic:128', '--out', tmp_path/'shards', '--maxcount', 40)
    out = tmp_path/'run'
    launch(launch_command(2, ['--data', tmp_path/'shards', '--epochs', 2, '--bs', 16, '--local-loss', '--out', out], launcher='torchrun'))
    m = json.loads((out/'metrics.json').read_text())
    index = json.loads((tmp_path/'shards'/'shards.json').read_text())
    assert (m['world_size'], m['global_bs'], m['epochs']) == (2, 32, 2)
    assert (m['n_train'], m['n_val']) == (index['counts']['train'], index['counts']['valid'])
    assert (out/'model'/'model.safetensors').exists()
