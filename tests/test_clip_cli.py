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
