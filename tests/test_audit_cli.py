"End-to-end tests of `medvlm_audit` on the real ROCO sample, on planted faults, and on both ROCOv2 layouts."
import json, shutil
import pytest
import medvlm.audit
from conftest import run_cli
from medvlm.test_utils import plant_faults, writable_copy
from medvlm.data import load, write_rocov2_zenodo, write_hf_parquet
from medvlm.audit import audit, write_audit, read_splits

def test_help():
    res = run_cli('medvlm_audit', '--help')
    assert '--strict' in res.stdout and 'dataset' in res.stdout

def test_synthetic(tmp_path):
    res = run_cli('medvlm_audit', 'synthetic:128', '--out', tmp_path)
    rep = json.loads((tmp_path/'audit.json').read_text())
    assert rep['n_pairs'] == 128 and rep['n_problems'] == 0 and 'modality' in res.stdout
    assert sum(rep['splits'].values()) == 128

def test_unknown_layout(tmp_path):
    res = run_cli('medvlm_audit', tmp_path, check=False)
    assert res.returncode != 0 and 'Looked for' in res.stderr and 'ROCOv2 Zenodo' in res.stderr

def test_real_roco(roco_dir, tmp_path):
    res = run_cli('medvlm_audit', roco_dir, '--out', tmp_path, '--tokenizer', 'minilm')
    rep = json.loads((tmp_path/'audit.json').read_text())
    assert (rep['n_pairs'], rep['n_problems'], rep['split_leaks']) == (1000, 0, 0)
    assert {'xray', 'ct', 'mri', 'us'} <= set(rep['modality_counts'])
    assert rep['concepts']['n_unique'] > 1000 and rep['concepts']['top'][0][0].startswith('C')
    assert 'modality' in res.stdout and 'top concepts' in res.stdout and 'records loaded        1000' in res.stdout
    assert sorted(p.name for p in tmp_path.glob('*.png')) == ['grid.png', 'long_tail.png', 'modality.png', 'text_lengths.png']

def test_planted_faults_real(roco_dir, tmp_path):
    "Every planted fault is reported with its path and reason; everything else, CMYK and 16-bit included, loads."
    copy = writable_copy(roco_dir, tmp_path/'roco')
    faults = plant_faults(copy)
    res = run_cli('medvlm_audit', copy, '--out', tmp_path/'out', '--strict', check=False)
    assert res.returncode == 1, res.stdout
    rep = json.loads((tmp_path/'out'/'audit.json').read_text())
    by_id = {p['id']: p for p in rep['problems']}
    expect = dict(truncated='truncated or corrupt image', zero_byte='zero-byte file', not_image='not an image',
                  missing='missing image file', empty_caption='empty caption', duplicate_id='duplicate ID')
    for fault, reason in expect.items():
        p = by_id[faults[fault]]
        assert p['reason'].startswith(reason), (fault, p)
        assert faults[fault] in p['path'] or p['path'].endswith('.csv') or 'captions' in p['path'], p
        assert p['path'] in res.stdout or rep['n_problems'] > 20
    assert rep['n_problems'] == len(expect) and rep['n_pairs'] == 1000 and rep['n_usable'] == 1000 - 5
    assert faults['cmyk'] not in by_id and faults['deep16'] not in by_id
    assert rep['image_modes']['CMYK'] == 1 and rep['image_modes']['I;16'] == 1
    assert run_cli('medvlm_audit', copy, check=False).returncode == 0  # without --strict: reported, not fatal

def test_both_rocov2_layouts(roco_dir, tmp_path):
    "The Zenodo release and the HF parquet layouts, built from the real sample, read back the same pairs."
    recs = load(roco_dir).records[:60]
    write_rocov2_zenodo(recs[:30], tmp_path/'zenodo', 'train'); write_rocov2_zenodo(recs[30:], tmp_path/'zenodo', 'valid')
    write_hf_parquet(recs[:30], tmp_path/'hf', 'train'); write_hf_parquet(recs[30:], tmp_path/'hf', 'validation')
    for layout in ('zenodo', 'hf'):
        res = run_cli('medvlm_audit', tmp_path/layout, '--out', tmp_path/f'{layout}_out')
        rep = json.loads((tmp_path/f'{layout}_out'/'audit.json').read_text())
        assert (rep['n_pairs'], rep['n_problems'], rep['split_source']) == (60, 0, 'dataset'), layout
        assert rep['splits'] == {'train': 30, 'valid': 30}
    z, h = load(tmp_path/'zenodo'), load(tmp_path/'hf')
    assert [r.caption for r in z.records] == [r.caption for r in h.records] == [r.caption for r in recs]
    assert h.records[0].image == recs[0].image.read_bytes()

def test_no_duplicate_crosses_splits(roco_dir, tmp_path):
    "Exact copies of an image under new IDs always land in the same split as the original."
    copy = writable_copy(roco_dir, tmp_path/'roco')
    ids = [l.split(',', 1)[0] for l in (copy/'captions.csv').read_text().splitlines()[1:]]
    extra = []
    for k, src in enumerate(ids[:40]):
        for j in range(2):
            new = f"DUP_{k}_{j}"
            shutil.copy(copy/'images'/f'{src}.jpg', copy/'images'/f'{new}.jpg')
            extra.append(f"{new},copy of {src}")
    (copy/'captions.csv').write_text((copy/'captions.csv').read_text() + '\n'.join(extra) + '\n')
    rep = audit(load(copy), progress=False)
    assert len(rep['duplicate_images']) >= 40 and rep['split_leaks'] == 0
    for k, src in enumerate(ids[:40]):
        assert rep['assignments'][f"DUP_{k}_0"] == rep['assignments'][f"DUP_{k}_1"] == rep['assignments'][src]

def test_hub_name_offline():
    "A hub dataset name is fetched with huggingface_hub; offline, the error says what to do instead."
    res = run_cli('medvlm_audit', 'eltorio/ROCOv2-radiology', check=False)
    assert res.returncode != 0 and "Could not fetch dataset 'eltorio/ROCOv2-radiology'" in res.stderr and 'local folder' in res.stderr

def test_text_only_reports(shared_data, tmp_path):
    "A dataset without images (IU X-ray reports) writes all its outputs, and says the image grid was skipped."
    res = run_cli('medvlm_audit', 'iu-xray-reports', '--out', tmp_path/'out')
    rep = json.loads((tmp_path/'out'/'audit.json').read_text())
    assert (rep['n_pairs'], rep['n_without_image'], rep['split_source']) == (3851, 3851, 'hashed')
    assert sorted(p.name for p in (tmp_path/'out').iterdir()) == ['audit.json', 'long_tail.png', 'modality.png', 'splits.csv', 'text_lengths.png']
    assert 'grid.png skipped: iu-xray-reports has no usable image' in res.stdout
    assert [p.name for p in tmp_path.iterdir()] == ['out']

def test_write_audit_all_or_nothing(tmp_path, monkeypatch):
    "A plot that fails leaves `out` as it was (an earlier run's files untouched, nothing new) and no temporary folder."
    ds = load('synthetic:16')
    rep = audit(ds, progress=False)
    out = write_audit(rep, ds, tmp_path/'out')
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    def broken(ds, ax=None): raise RuntimeError('plotting failed')
    monkeypatch.setattr(medvlm.audit, 'plot_long_tail', broken)
    with pytest.raises(RuntimeError, match='plotting failed'): write_audit(dict(rep, name='a second run'), ds, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(RuntimeError): write_audit(rep, ds, tmp_path/'new')
    assert [p.name for p in tmp_path.iterdir()] == ['out']

def test_folder_named_synthetic(roco_dir, tmp_path):
    "A folder called synthetic_roco is read as the folder it is, not taken for the synthetic spec."
    copy = tmp_path/'synthetic_roco'; (copy/'images').mkdir(parents=True)
    rows = (roco_dir/'captions.csv').read_text().splitlines(keepends=True)
    (copy/'captions.csv').write_text(''.join(rows[:1] + rows[1:6]))
    ids = [l.split(',', 1)[0] for l in rows[1:6]]
    for i in ids: shutil.copyfile(roco_dir/'images'/f'{i}.jpg', copy/'images'/f'{i}.jpg')
    run_cli('medvlm_audit', 'synthetic_roco', '--out', 'out', cwd=tmp_path)
    rep = json.loads((tmp_path/'out'/'audit.json').read_text())
    assert (rep['name'], rep['n_pairs'], rep['n_problems'], rep['image_modes'] != {}) == ('synthetic_roco', 5, 0, True)
    assert sorted(read_splits(tmp_path/'out'/'splits.csv')) == sorted(ids)

def test_vqa_rad_carved_valid(shared_data):
    "The summary says where VQA-RAD's valid split came from."
    res = run_cli('medvlm_audit', 'vqa-rad')
    assert 'splits (dataset, valid carved from train by image) train 2986 | valid 78 | test 451' in res.stdout
