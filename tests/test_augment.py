"Medical-safe augmentation beyond the notebook's examples: a longer laterality run, and seeded augmentation on the real samples with two worker processes."
from collections import Counter
import albumentations as A
import pytest, torch
from medvlm.audit import split_assignments
from medvlm.augment import PRESETS, Augment, laterality_kept, modality_table, preset
from medvlm.data import load
from medvlm.dls import ImageTextDataLoaders, VQADataLoaders

@pytest.mark.parametrize('modality', PRESETS)
def test_laterality_long_run(modality):
    "Every lateralised finding of 256 synthetic cases stays on its side through 8 draws of each preset at full strength."
    kept = laterality_kept(preset(modality, 1.), n=256, size=128, draws=8, seed=3)
    assert len(kept) > 1500 and kept.all(), f"{(~kept).sum()} of {len(kept)} findings changed side"

def test_flip_breaks_laterality():
    "The same check catches a flip that the validator was told to allow."
    kept = laterality_kept(A.Compose([*preset('ct', 1.).transforms, A.HorizontalFlip(p=.5)]), n=128, draws=4, seed=3)
    assert 0.3 < kept.mean() < 0.7

def _first_batches(ds, cls, assignments, num_workers, seed=0, epochs=2):
    "The first training batch's images of `epochs` passes of a fresh DataLoaders."
    dl = cls.from_dataset(ds, assignments=assignments, size=64, bs=16, num_workers=num_workers, seed=seed).train
    return [next(iter(dl))[0] for _ in range(epochs)]

@pytest.mark.parametrize('name,cls', [('roco-ccby-1000', ImageTextDataLoaders), ('vqa-rad', VQADataLoaders)])
def test_real_data_seeded_workers(shared_data, name, cls):
    "On real figures, two workers give the main process's augmented batches, epoch by epoch; each epoch draws afresh."
    ds = load(name)
    split = split_assignments(ds)
    main, workers = _first_batches(ds, cls, split, 0), _first_batches(ds, cls, split, 2)
    for a, b in zip(main, workers): assert torch.equal(a, b)
    assert not torch.equal(main[0], main[1])
    assert not torch.equal(main[0], _first_batches(ds, cls, split, 0, seed=1, epochs=1)[0])

def test_real_modalities_and_flips(shared_data):
    "ROCO figures get the presets of their modalities, and `allow_flips=True` is refused: real captions name sides."
    roco = load('roco-ccby-1000')
    counts = Counter(modality_table(roco.records).values())
    assert set(counts) == set(PRESETS) and all(counts[m] > 50 for m in PRESETS), counts
    flips = Augment(pipelines=A.Compose([A.HorizontalFlip()]), allow_flips=True)
    with pytest.raises(ValueError, match='name a side'):
        ImageTextDataLoaders.from_dataset(roco, assignments={r.id: 'train' for r in roco.records}, size=32, num_workers=0, augment=flips)
