"End-to-end tests of `medvlm_train_clip` and `medvlm_eval_clip` (the real console scripts, in subprocesses)."
import json
from transformers import CLIPModel
from conftest import run_cli

KEYS = ('i2t_r1', 'i2t_r5', 'i2t_r10', 't2i_r1', 't2i_r5', 't2i_r10', 'i2t_mrr', 't2i_mrr', 'i2t_medr', 't2i_medr', 'mean_recall')

def test_help():
    assert '--random-init-text' in run_cli('medvlm_train_clip', '--help').stdout
    assert '--split' in run_cli('medvlm_eval_clip', '--help').stdout

def test_train_then_eval_synthetic(tmp_path):
    "A short run writes metrics.json, a reloadable CLIPModel folder, and eval on the same split reproduces `final`."
    res = run_cli('medvlm_train_clip', '--data', 'synthetic:256', '--epochs', '2', '--bs', '32', '--out', tmp_path)
    m = json.loads((tmp_path/'metrics.json').read_text())
    assert set(KEYS) <= set(m['best']) and set(KEYS) <= set(m['final'])
    assert m['epochs'] == 2 and m['n_val'] > 0 and m['wall_s'] > 0 and m['samples_per_s'] > 0
    assert 'R@1' in res.stdout and (tmp_path/'training.png').exists() and (tmp_path/'best'/'model.safetensors').exists()
    CLIPModel.from_pretrained(tmp_path/'model')
    run_cli('medvlm_eval_clip', '--model', tmp_path/'model', '--data', 'synthetic:256', '--split', 'valid', '--out', tmp_path/'eval')
    e = json.loads((tmp_path/'eval'/'metrics.json').read_text())
    assert e['n_val'] == m['n_val'] and {k: e[k] for k in KEYS} == {k: m['final'][k] for k in KEYS}

def test_roco_pretrained_text_beats_random(roco_dir, tmp_path):
    "On the real ROCO sample, the pretrained MiniLM text tower beats the same architecture re-initialised, on R@10."
    args = ['--data', roco_dir, '--image-model', 'resnet18', '--image-size', '64', '--text-model', 'minilm', '--epochs', '3', '--lr', '1e-3']
    run_cli('medvlm_train_clip', *args, '--out', tmp_path/'pretrained')
    run_cli('medvlm_train_clip', *args, '--random-init-text', '--out', tmp_path/'random')
    pre, rnd = (json.loads((tmp_path/n/'metrics.json').read_text()) for n in ('pretrained', 'random'))
    assert pre['n_val'] == rnd['n_val'] > 80
    assert pre['final']['i2t_r10'] > rnd['final']['i2t_r10'] and pre['final']['t2i_r10'] > rnd['final']['t2i_r10'], (pre['final'], rnd['final'])
    assert pre['final']['i2t_r10'] > 2 * pre['chance']['r10']

def test_wandb_offline(tmp_path, monkeypatch):
    "With --wandb, fastai's WandbCallback (with the fastai#4173 fix) writes an offline run; nothing is sent."
    monkeypatch.setenv('WANDB_DIR', str(tmp_path))
    run_cli('medvlm_train_clip', '--data', 'synthetic:128', '--epochs', '1', '--bs', '32', '--wandb', '--out', tmp_path/'run')
    runs = list((tmp_path/'wandb').glob('offline-run-*'))
    assert len(runs) == 1 and any(runs[0].rglob('*.wandb'))
