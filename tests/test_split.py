"The split beyond the notebook's examples: stable under added and removed records on the real ROCO samples, leak-free with copies, VQA-RAD's carved valid split, modality shares on real data, and each image checked once per process."
from collections import Counter, defaultdict
import numpy as np
import pytest
import medvlm.audit
from medvlm.audit import audit, split_assignments, write_audit
from medvlm.data import Dataset, Pair, load
from medvlm.dls import ImageTextDataLoaders, VQADataLoaders
from medvlm.shards import write_shards
from medvlm.synthetic import synthetic_pairs

def _moved(before: dict, after: dict) -> list:
    "Ids in both splits whose assignment differs."
    return [i for i, s in before.items() if i in after and after[i] != s]

def test_synthetic_stable():
    "Removing any one of 300 records, or adding 100 new ones, moves no other record."
    syn = load('synthetic:300')
    base = split_assignments(syn)
    for k in (0, 150, 299):
        assert _moved(base, split_assignments(Dataset('fewer', 'pairs', syn.records[:k] + syn.records[k + 1:]))) == []
    new = [Pair(f'new_{i}', r.caption, r.image, r.cuis) for i, r in enumerate(synthetic_pairs(100, seed=7).records)]
    more = split_assignments(Dataset('more', 'pairs', syn.records + new))
    assert _moved(base, more) == [] and None not in more.values()

def test_real_roco_stable(shared_data):
    "On roco-ccby-extra, removing its first record (62 moved under the old greedy split) or adding 100 roco-ccby-1000 pairs (330 moved) moves none."
    extra, roco = load('roco-ccby-extra'), load('roco-ccby-1000')
    base = split_assignments(extra)
    fewer = split_assignments(Dataset('fewer', 'pairs', extra.records[1:]))
    more = split_assignments(Dataset('more', 'pairs', extra.records + roco.records[:100]))
    assert len(fewer) == 1023 and _moved(base, fewer) == []
    assert len(more) == 1124 and _moved(base, more) == [] and None not in more.values()
    assert Counter(base.values()) == {'train': 823, 'valid': 103, 'test': 98}

def test_copies_share_a_split(shared_data):
    "Exact copies of real figures under new ids take one split with their originals, in every split; the audit finds no leak."
    roco = load('roco-ccby-1000')
    copies = [Pair(f'COPY_{i}', 'the same figure, reused', r.image.read_bytes()) for i, r in enumerate(roco.records[:60])]
    ds = Dataset('with copies', 'pairs', roco.records + copies)
    split, rep = split_assignments(ds), audit(ds, progress=False)
    assert all(split[c.id] == split[r.id] for c, r in zip(copies, roco.records))
    assert set(split[c.id] for c in copies) == {'train', 'valid', 'test'}
    assert rep['split_leaks'] == 0 and len(rep['duplicate_images']) == 60 and rep['assignments'] == split

def test_vqa_rad_valid_carved(shared_data):
    "VQA-RAD's own train/test is kept; valid is carved from train by image, and no valid image is in train or test."
    vqa = load('vqa-rad')
    split, rep = split_assignments(vqa), audit(vqa, progress=False)
    assert rep['split_source'] == 'dataset, valid carved from train by image' and rep['assignments'] == split
    assert Counter(split.values()) == {'train': 2986, 'valid': 78, 'test': 451}
    assert all(split[r.id] == 'test' for r in vqa.records if r.split == 'test')
    images = defaultdict(set)
    for r in vqa.records: images[split[r.id]].add(r.meta['image_name'])
    assert len(images['valid']) == 8 and not images['valid'] & (images['train'] | images['test'])
    by_image = defaultdict(set)
    for r in vqa.records:
        if r.split == 'train': by_image[r.meta['image_name']].add(split[r.id])
    assert all(len(s) == 1 for s in by_image.values())  # all training questions of one image in one split

def _share_deviation(rep) -> dict:
    "{(split, modality): (share minus overall share, in binomial standard deviations)}."
    n, shares = rep['splits'], rep['split_modality_share']
    overall = {m: sum(shares[s].get(m, 0) * n[s] for s in n) / sum(n.values()) for m in ('xray', 'ct', 'mri', 'us')}
    return {(s, m): (shares[s].get(m, 0) - p, (shares[s].get(m, 0) - p) / np.sqrt(p * (1 - p) / n[s])) for s in n for m, p in overall.items()}

def test_real_modality_shares(shared_data):
    "Hashing stratifies in expectation only: on the 2,024 real ROCO pairs every main modality's share in every split is within 3 binomial SDs and 6 share points (measured: 5.0, xray in valid)."
    both = Dataset('both', 'pairs', load('roco-ccby-1000').records + load('roco-ccby-extra').records)
    dev = _share_deviation(audit(both, progress=False))
    assert all(abs(z) < 3 and abs(d) < 0.06 for d, z in dev.values()), dev

@pytest.fixture
def check_calls(monkeypatch):
    "A Counter of `check_image` calls per image, counted as the audit makes them."
    calls, real = Counter(), medvlm.audit.check_image
    def counting(src):
        calls[src if isinstance(src, bytes) else str(src)] += 1
        return real(src)
    monkeypatch.setattr(medvlm.audit, 'check_image', counting)
    return calls

def test_pairs_checked_once(check_calls, tmp_path):
    "Audit, its files (the grid included), the split, DataLoaders and shards of one Dataset check each image once."
    ds = load('synthetic:48')
    rep = audit(ds, progress=False)
    write_audit(rep, ds, tmp_path/'audit')
    split = split_assignments(ds)
    ImageTextDataLoaders.from_dataset(ds, size=32, bs=8, num_workers=0).one_batch()
    write_shards(ds, tmp_path/'shards')
    assert rep['assignments'] == split and len(check_calls) == 48 and set(check_calls.values()) == {1}

def test_vqa_checked_once(check_calls):
    "Four questions per image: each of the 12 images is checked once across the audit, the split and the VQA DataLoaders."
    ds = load('synthetic-vqa:12')
    audit(ds, progress=False); split_assignments(ds)
    VQADataLoaders.from_dataset(ds, size=32, bs=8, num_workers=0).one_batch()
    assert len(ds) == 48 and len(check_calls) == 12 and set(check_calls.values()) == {1}

def test_union_keeps_each_part_split(shared_data):
    "`a+b` is one dataset of both parts, and each record keeps the split it has in its own part (the split hangs on the id)."
    alone = {**split_assignments(load('roco-ccby-1000')), **split_assignments(load('roco-ccby-extra'))}
    union = load('roco-ccby-1000+roco-ccby-extra')
    assert len(union) == 2024 and split_assignments(union) == alone
