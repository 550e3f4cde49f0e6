"End-to-end tests of `medvlm_make_shards`: synthetic and real ROCO pairs written as shards, read back by `load`, and batched by `ImageTextDataLoaders`."
import json
from conftest import run_cli
from medvlm.data import load, image_bytes, TarMember
from medvlm.audit import audit, split_assignments, write_splits
from medvlm.dls import ImageTextDataLoaders

def test_help():
    res = run_cli('medvlm_make_shards', '--help')
    assert all(s in res.stdout for s in ('--data', '--out', '--maxcount', 'splits.csv', 'webdataset'))

def test_synthetic(tmp_path):
    "The audit's split is written and read back unchanged."
    res = run_cli('medvlm_make_shards', '--data', 'synthetic:96', '--out', tmp_path/'s', '--maxcount', 32)
    rep = audit(load('synthetic:96'), progress=False)
    index = json.loads((tmp_path/'s'/'shards.json').read_text())
    assert index['counts'] == rep['splits'] and index['n_skipped'] == 0
    assert all(0 < len(sh['samples']) <= 32 for sh in index['shards'])
    assert all(f"{split:<10}{n:>7} samples" in res.stdout for split, n in rep['splits'].items()) and 'skipped' in res.stdout
    assert {r.id: r.split for r in load(tmp_path/'s').records} == rep['assignments']

def test_real_roco(roco_dir, tmp_path):
    "ROCO with a split from `splits.csv`: every pair round-trips, and the training DataLoader batches straight from the tars."
    roco = load(roco_dir)
    assignments = split_assignments(roco)  # the split only: the CLI's own audit is tested on synthetic
    write_splits(assignments, tmp_path/'splits.csv')
    res = run_cli('medvlm_make_shards', '--data', roco_dir, '--out', tmp_path/'r', '--maxcount', 400, '--splits', tmp_path/'splits.csv')
    assert 'skipped         0' in res.stdout
    back = load(tmp_path/'r')
    assert len(back) == 1000 and {r.id: r.split for r in back.records} == assignments
    orig = {r.id: r for r in roco.records}
    for r in back.records[::25]:
        o = orig[r.id]
        assert isinstance(r.image, TarMember) and image_bytes(r.image) == o.image.read_bytes()
        assert (r.caption, r.cuis, r.licence, r.attribution) == (o.caption, o.cuis, o.licence, o.attribution)
    dls = ImageTextDataLoaders.from_dataset(back, None, assignments, size=64, bs=8, num_workers=0, augment=False, seed=0)
    img, ids, mask = dls.one_batch()
    assert img.shape == (8, 3, 64, 64) and ids.shape[0] == 8
