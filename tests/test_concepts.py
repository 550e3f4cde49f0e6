"Concept detection: the F1 against the challenge's own procedure, batch targets from real DataLoaders, a head beside a CLIP model folder, and the whole protocol on the real ROCO sample."
import random
import pytest, torch
from timm.data.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from medvlm.audit import split_assignments
from medvlm.clip import build_clip, load_clip, save_clip
from medvlm.concepts import (ConceptHead, ConceptTargets, concept_f1, concept_vocab, evaluate_concepts, load_concept_head,
                             multi_hot, save_concept_head)
from medvlm.data import Pair, load, read_image
from medvlm.dls import ImageTextDataLoaders
from medvlm.augment import resize_crop, resize_shorter, to_chw3

def official_score(gt: dict, pred: dict) -> float:
    "The primary score as ImageCLEFmedical's evaluators compute it (per-image sklearn binary F1 over the union; empty truths left out)."
    from sklearn.metrics import f1_score
    max_score, score = len(gt), 0.
    for image_id, predicted in pred.items():
        predicted, true = tuple(c.upper() for c in predicted), tuple(c.upper() for c in gt[image_id])
        if not true: max_score -= 1; continue
        concepts = sorted(set(true + predicted))
        score += f1_score([int(c in true) for c in concepts], [int(c in predicted) for c in concepts], average='binary', zero_division=0)
    return score / max_score

def test_f1_matches_the_official_procedure():
    pytest.importorskip('sklearn')
    rng = random.Random(0)
    pool = [f'C{i:07d}' for i in range(12)]
    for _ in range(20):
        gt = {f'img{i}': tuple(rng.sample(pool, rng.randint(0, 5))) for i in range(30)}
        pred = {k: tuple(c.lower() if rng.random() < .2 else c for c in rng.sample(pool, rng.randint(0, 6))) for k in gt}
        if not any(gt.values()): continue
        assert concept_f1(pred, gt) == pytest.approx(official_score(gt, pred), abs=1e-12)

def test_targets_from_real_dataloaders():
    "The lookup by caption tokens finds, for a real validation batch, each record's own concepts."
    ds = load('synthetic:96')
    dls = ImageTextDataLoaders.from_dataset(ds, size=32, bs=16, num_workers=0, augment=False, seed=0)
    items = dls.valid.dataset.items
    assignments = split_assignments(ds)
    vocab = concept_vocab([r for r in ds.records if assignments[r.id] == 'train'], min_count=1)
    ct = ConceptTargets(ds.records, vocab, dls.tokenizer, max_len=77)
    img, ids, mask = dls.valid.one_batch()
    targets, known = ct(ids, mask)
    expected = multi_hot(items[:len(ids)], vocab)
    assert known.any()
    assert torch.equal(targets[known], expected[known])
    position = {r.id: i for i, r in enumerate(ds.records)}
    by_index, known_index = ct[torch.tensor([position[r.id] for r in items[:len(ids)]])]
    assert torch.equal(by_index, expected) and bool((known_index | ~known).all())  # the index knows at least what the captions do

def test_head_beside_a_clip_model(tmp_path):
    "A concept head saved into a CLIP model folder leaves the CLIP loadable, and comes back itself."
    model, tok = build_clip('tiny', image_size=32)
    recs = [Pair('a', 'ct chest', cuis=('C1', 'C2')), Pair('b', 'mri brain', cuis=('C1',))]
    vocab = concept_vocab(recs, min_count=1)
    head = ConceptHead(model.vision.config.hidden_size, len(vocab), prior=vocab.freqs)
    save_clip(model, tok, tmp_path/'m'); save_concept_head(head, vocab, tmp_path/'m')
    clip2, _ = load_clip(tmp_path/'m')
    head2, vocab2 = load_concept_head(tmp_path/'m')
    px = torch.randn(2, 3, 32, 32)
    feats = clip2.image_features(px)
    assert torch.allclose(head2(feats), head.eval()(model.eval().image_features(px)), atol=1e-6)
    assert vocab2.cuis == vocab.cuis

def test_vocabulary_sees_only_training_images():
    "A concept found only in validation or test images is not predicted: the protocol learns nothing from them."
    g = torch.Generator().manual_seed(0)
    recs = [Pair(f'r{i}', '', cuis=('C1', 'CTEST') if i >= 40 else ('C1',)) for i in range(60)]
    split = {r.id: 'train' if i < 40 else 'valid' if i < 50 else 'test' for i, r in enumerate(recs)}
    res = evaluate_concepts(torch.randn(60, 4, generator=g), recs, split, min_count=1, steps=20)
    assert res['vocab'].cuis == ['C1'] and res['n'] == dict(train=40, valid=10, test=10)
    assert res['head_test'] == pytest.approx(2 / 3) and res['baseline_test'] == pytest.approx(2 / 3)  # {C1} against {C1, CTEST}

def test_real_roco_protocol(roco_dir):
    "Head on randomly initialised ResNet-18 features against the frequency baseline, on the real sample (about half a minute)."
    ds = load(roco_dir)
    assignments = split_assignments(ds)
    mean, std = (torch.tensor(s).view(3, 1, 1) for s in (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD))
    torch.manual_seed(0)
    tower, _ = build_clip('tiny', image_model='resnet18', image_size=48)
    tower.eval()
    def pixels(r): return (resize_crop(to_chw3(resize_shorter(read_image(r.image).astype('float32'), 48)), 48) - mean) / std
    with torch.no_grad():
        features = torch.cat([tower.image_features(torch.stack([pixels(r) for r in ds.records[i:i + 64]])) for i in range(0, len(ds), 64)])
    res = evaluate_concepts(features, ds.records, assignments)
    labelled = {s: sum(1 for r in ds.records if r.cuis and assignments[r.id] == s) for s in ('train', 'valid', 'test')}
    assert res['n'] == labelled and min(labelled.values()) > 50
    assert 1 <= res['k'] <= 30 and 0 < res['threshold'] < 1 and 1 <= res['best_step'] <= 300
    for key in ('baseline_valid', 'head_valid', 'baseline_test', 'head_test'): assert 0.05 < res[key] < 0.5, (key, res[key])
    assert len(res['test_scores']['head']) == len(res['test_scores']['baseline']) == labelled['test']
