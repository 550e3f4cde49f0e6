"""Runs that must fail early, stop, or refuse: in-process `train_clip`/`eval_clip` and the CLIs, on the synthetic set.
Each test here failed on the code before the fix it guards (see the issue's closing note)."""
import csv, json, math, struct
from pathlib import Path
import pytest, torch
from fastai.callback.core import Callback
from medvlm.train import train_clip, eval_clip, TrainingDiverged
from conftest import run_cli

def poison_after(epoch):
    "A callback that makes the image projection NaN after the given epoch (or right after the first step for -1)."
    class Poison(Callback):
        order = 95
        def _poison(self):
            with torch.no_grad(): self.learn.model.vision_proj.weight.fill_(math.nan)
        def after_step(self):
            if epoch == -1 and self.iter == 0: self._poison()
        def after_epoch(self):
            if self.epoch == epoch: self._poison()
    return Poison()

def test_diverged_run_saves_no_best(tmp_path):
    "NaN weights from the first step on: the run stops, no best or final model is saved, and it raises after writing metrics.json."
    with pytest.raises(TrainingDiverged, match='no model was saved'):
        train_clip('synthetic:128', epochs=3, bs=32, out=tmp_path, num_workers=0, cbs=[poison_after(-1)])
    m = json.loads((tmp_path/'metrics.json').read_text())
    assert m['status'] == 'diverged' and m['best'] is None
    assert not (tmp_path/'best').exists() and not (tmp_path/'model').exists()

def test_diverged_run_keeps_last_finite_best(tmp_path):
    "A model that diverges after good epochs keeps the best of them; the NaN epoch is never 'better'."
    with pytest.raises(TrainingDiverged, match='best/ keeps'):
        train_clip('synthetic:512', epochs=10, bs=32, out=tmp_path, num_workers=0, cbs=[poison_after(6)])
    m = json.loads((tmp_path/'metrics.json').read_text())
    assert m['status'] == 'diverged' and math.isfinite(m['best']['mean_recall'])
    assert (tmp_path/'best'/'medvlm.json').exists() or (tmp_path/'best'/'config.json').exists()

def test_run_that_does_not_learn_says_so(tmp_path):
    "A learning rate of zero leaves the model at chance: no best/ is saved (model/ keeps the final weights), metrics.json says so, the CLI says what to try."
    res = run_cli('medvlm_train_clip', '--data', 'synthetic:256', '--epochs', '2', '--bs', '32', '--lr', '0', '--out', tmp_path)
    m = json.loads((tmp_path/'metrics.json').read_text())
    assert m['status'] == 'did_not_learn' and m['best'] is None and m['final']['mean_recall'] <= m['floor']
    assert not (tmp_path/'best').exists() and (tmp_path/'model').exists() and 'test' not in m
    assert 'did not learn' in res.stderr and 'Try a lower --lr' in res.stderr

def test_too_few_pairs_for_a_batch(tmp_path):
    "Fewer training pairs than a batch would run zero optimiser steps: refused before training, by the function and the CLI."
    with pytest.raises(ValueError, match='no optimiser step'): train_clip('synthetic:48', bs=64, epochs=1, out=tmp_path, num_workers=0)
    res = run_cli('medvlm_train_clip', '--data', 'synthetic:48', '--bs', '64', '--epochs', '1', '--out', tmp_path/'cli', check=False)
    assert res.returncode != 0 and 'no optimiser step' in res.stderr and not (tmp_path/'cli'/'best').exists()

@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    "A 2-epoch synthetic run with a ResNet-18 image tower at 64 px (its model folders and splits.csv)."
    out = tmp_path_factory.mktemp('run')
    _, m = train_clip('synthetic:256', image_model='resnet18', image_size=64, epochs=2, bs=32, out=out, num_workers=0)
    return out, m

def test_eval_uses_saved_size_and_run_split(run_dir, tmp_path):
    "Evaluation runs at the trained size (64, not 224) on the run's splits.csv, and reproduces the final metrics."
    out, m = run_dir
    res = eval_clip(out/'model', 'synthetic:256', split='valid', num_workers=0)
    assert res['image_size'] == 64 and res['splits_file'] == str(out/'splits.csv')
    assert res['n_val'] == m['n_val'] and res['mean_recall'] == m['final']['mean_recall']
    rows = list(csv.DictReader(open(out/'splits.csv')))
    edited = tmp_path/'splits.csv'  # move every validation record but 5 to train: evaluation must follow the file
    keep = [r['id'] for r in rows if r['split'] == 'valid'][:5]
    with open(edited, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader()
        for r in rows: w.writerow({**r, 'split': 'valid' if r['id'] in keep else ('train' if r['split'] == 'valid' else r['split'])})
    assert eval_clip(out/'model', 'synthetic:256', split='valid', num_workers=0, splits=edited)['n_val'] == 5

def test_eval_refuses_unknown_or_empty_split(run_dir, tmp_path):
    out, _ = run_dir
    with pytest.raises(ValueError, match='unknown split'): eval_clip(out/'model', 'synthetic:256', split='tset')
    res = run_cli('medvlm_eval_clip', '--model', out/'model', '--data', 'synthetic:256', '--split', 'tset', check=False)
    assert res.returncode != 0 and 'unknown split' in res.stderr
    rows = list(csv.DictReader(open(out/'splits.csv')))
    no_test = tmp_path/'splits.csv'
    with open(no_test, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader()
        for r in rows: w.writerow({**r, 'split': 'train' if r['split'] == 'test' else r['split']})
    with pytest.raises(ValueError, match='holds no usable pairs'): eval_clip(out/'model', 'synthetic:256', split='test', splits=no_test)

def wandb_records(path):
    "Every record of a W&B transaction log (`run-*.wandb`: a LevelDB-style log of `Record` protobufs after a 7-byte header)."
    from wandb.proto.wandb_internal_pb2 import Record
    data, pos, block, buf, out = Path(path).read_bytes(), 7, 32768, b'', []
    while pos + 7 <= len(data):
        if block - pos % block < 7: pos += block - pos % block; continue  # a block's tail too short for a header is padding
        _, length, kind = struct.unpack('<IHB', data[pos:pos + 7]); pos += 7
        buf += data[pos:pos + length]; pos += length
        if kind in (1, 4): out.append(Record.FromString(buf)); buf = b''  # FULL or LAST chunk ends a record
    return out

def history_keys(run_dir) -> set:
    recs = wandb_records(next(Path(run_dir).glob('run-*.wandb')))
    return {i.key or i.nested_key[0] for r in recs if r.WhichOneof('record_type') == 'history' for i in r.history.item}  # top-level names

def test_wandb_logs_metrics_gradients_and_maps_in_every_fit(tmp_path, monkeypatch):
    "Two short runs in one process: each offline run holds the metrics, gradient histograms and attention maps (read back from its log)."
    monkeypatch.setenv('WANDB_DIR', str(tmp_path)); monkeypatch.setenv('WANDB_MODE', 'offline')
    for i in range(2):
        learn, _ = train_clip('synthetic:128', epochs=1, bs=32, wandb=True, out=tmp_path/f'run{i}', num_workers=0)
        assert learn.model.spec['vision']['kind'] == 'clip'  # fastai's config formatting no longer writes through the spec
    runs = sorted((tmp_path/'wandb').glob('offline-run-*'))
    assert len(runs) == 2
    for run in runs:
        keys = history_keys(run)
        assert {'mean_recall', 'i2t_r1', 'train_loss', 'attention_rollout'} <= keys, sorted(keys)
        assert any(k.startswith('gradients/') for k in keys), sorted(keys)
        assert list(run.rglob('attention_rollout*.png'))

def test_importing_medvlm_patches_nothing_in_fastai():
    "fastai's DistributedDL broadcast and W&B config formatter are as shipped after importing every medvlm module."
    code = ("import fastai.distributed as fd, fastai.callback.wandb as fw\n"
            "before = fd.DistributedDL._broadcast, fw._format_config\n"
            "import medvlm.train, medvlm.bench, medvlm.parallel, medvlm.shards, medvlm.fastai_fixes\n"
            "assert (fd.DistributedDL._broadcast, fw._format_config) == before\n")
    import subprocess, sys
    subprocess.run([sys.executable, '-c', code], check=True)

def test_each_image_checked_once_per_run(tmp_path, monkeypatch):
    "Training (split, DataLoaders) and evaluating (the run's splits.csv) check each image file once in all (the old code audited again to evaluate)."
    import medvlm.audit
    from collections import Counter
    from medvlm.data import load, write_rocov2_zenodo
    write_rocov2_zenodo(load('synthetic:96').records, tmp_path/'data')
    seen, check = Counter(), medvlm.audit.check_image
    def counting(img): seen[str(img)] += 1; return check(img)
    monkeypatch.setattr(medvlm.audit, 'check_image', counting)
    train_clip(str(tmp_path/'data'), epochs=1, bs=32, out=tmp_path/'run', num_workers=0)
    eval_clip(tmp_path/'run'/'model', str(tmp_path/'data'), split='valid', num_workers=0)
    assert len(seen) == 96 and max(seen.values()) == 1, seen.most_common(3)
