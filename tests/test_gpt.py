"The GPT's command lines end to end: medvlm_prepare_text, medvlm_train_gpt (one process and two under accelerate launch), medvlm_speedrun."
import json, math
from medvlm.distributed import launch_command
from medvlm.gpt import load_gpt, generate
from medvlm.text import load_tokenizer
import torch
from conftest import launch, run_cli

TINY = ['--steps', 60, '--eval-every', 30, '--recipe']

def test_help_of_every_gpt_cli():
    for name in ('medvlm_prepare_text', 'medvlm_train_gpt', 'medvlm_speedrun'):
        assert 'usage' in run_cli(name, '--help').stdout.lower()

def test_train_gpt_one_process_learns_and_generates(tmp_path):
    out = tmp_path/'gpt'
    res = run_cli('medvlm_train_gpt', '--data', 'synthetic-reports:256', '--tokenizer', 'char', '--steps', 300, '--eval-every', 100, '--out', out)
    assert 'validation loss' in res.stdout
    m = json.loads((out/'metrics.json').read_text())
    assert m['world_size'] == 1 and m['steps'] == 300
    assert m['final_val_loss'] < 0.5 * math.log(m['config']['vocab_size']), m['final_val_loss']  # far below a uniform guess
    model, tok = load_gpt(out/'model'), load_tokenizer(out/'model'/'tokenizer')
    prompt = torch.tensor([tok.encode('Findings: ')])
    text = tok.decode(generate(model, prompt, 40, greedy=True)[0].tolist())
    assert text.startswith('Findings: ') and len(text) > len('Findings: ')

def test_train_gpt_under_accelerate_two_processes(tmp_path):
    "`medvlm_train_gpt` unchanged under `accelerate launch` with 2 CPU processes: both train, rank 0 writes, the loss falls."
    out = tmp_path/'ddp'
    res = launch(launch_command(2, ['--data', 'synthetic-reports:128', '--tokenizer', 'char', *TINY, 'baseline', '--out', out], module='medvlm.gpt_train'),
                 OMP_NUM_THREADS='1')
    m = json.loads((out/'metrics.json').read_text())
    assert m['world_size'] == 2 and m['steps'] == 60
    assert m['tokens'] == 60 * 2 * 12 * 64  # both ranks' windows counted
    assert m['curve'][-1]['val_loss'] < m['curve'][0]['val_loss'] < math.log(m['config']['vocab_size'])
    assert res.stdout.count('validation loss') == 1  # one summary, from rank 0

def test_prepare_text_and_bad_spec(tmp_path):
    (tmp_path/'notes.txt').write_text('the chest is clear. ' * 200)
    res = run_cli('medvlm_prepare_text', tmp_path/'notes.txt', tmp_path/'tok', '--tokenizer', 'char')
    meta = json.loads((tmp_path/'tok'/'meta.json').read_text())
    assert meta['tokens']['train'] == int(4000 * 0.9) and meta['tokens']['val'] == 4000 - int(4000 * 0.9), res.stdout
    bad = run_cli('medvlm_train_gpt', '--data', tmp_path/'nowhere.txt', '--out', tmp_path/'x', check=False)
    assert bad.returncode != 0 and 'medvlm_train_gpt:' in bad.stderr and 'Traceback' not in bad.stderr

def test_speedrun_cli_writes_both_configs(tmp_path):
    out = tmp_path/'sr'
    res = run_cli('medvlm_speedrun', '--data', 'synthetic-reports:128', '--budget-s', 4, '--n-layer', 2, '--n-embd', 32, '--n-head', 2,
                  '--block-size', 32, '--bs', 16, '--out', out)
    r = json.loads((out/'speedrun.json').read_text())
    assert set(r) >= {'target_loss', 'gemm_gflops', 'ratio', 'configs'} and set(r['gemm_gflops']) == {'fp32', 'bf16'}
    for m in r['configs'].values():
        assert set(m) >= {'time_to_target_s', 'reached', 'final_val_loss', 'tokens_per_s', 'mfu', 'params', 'steps', 'precision'}
    assert 'ratio' in res.stdout and 'baseline' in res.stdout and 'medvlm' in res.stdout
