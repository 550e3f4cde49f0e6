"A folder of DICOM files end to end: audited, then a tiny CLIP trained on it through the same DataLoaders as JPEGs."
import shutil
from pydicom.data import get_testdata_file
from medvlm.audit import run_audit
from medvlm.synthetic import synthetic_pairs
from medvlm.test_utils import write_dicom_rocov2
from medvlm.train import train_clip

def test_dicom_folder_audits_and_trains(tmp_path, capsys):
    "96 synthetic pairs as DICOM (CT, MONOCHROME1 DX, MR, RGB US) plus pydicom's CT, MR and an RT plan: the plan is a problem, the rest trains."
    folder = write_dicom_rocov2(synthetic_pairs(96).records, tmp_path/'dicom')
    extra = {'CT_small': 'Axial CT of the head.', 'MR_small': 'Axial MR image of the head.', 'rtplan': 'A radiotherapy plan.'}
    for name, caption in extra.items():
        shutil.copyfile(get_testdata_file(f'{name}.dcm'), folder/'images'/f'{name}.dcm')
        with open(folder/'captions.csv', 'a') as f: f.write(f"{name},{caption}\n")
    rep = run_audit(str(folder), progress=False)
    assert rep['n_pairs'] == 99 and rep['n_usable'] == 98, rep['problem_counts']
    assert [p['reason'].split(' (')[0] for p in rep['problems']] == ['DICOM without pixel data']
    assert rep['dicom']['n_files'] == 99 and rep['dicom']['photometric']['MONOCHROME1'] > 0
    assert rep['modality_counts'].get('unknown', 0) == 1  # only the plan: every image's modality came from its tag
    assert 'DICOM (99 files)' in capsys.readouterr().out
    _, m = train_clip(str(folder), epochs=1, bs=32, out=tmp_path/'run', num_workers=0)
    assert m['status'] != 'diverged' and m['epochs'] == 1 and m['n_train'] + m['n_val'] < 98, m

def test_dicom_in_shards_and_parquet(tmp_path):
    "DICOM images written into webdataset shards and a parquet shard keep their `.dcm` nature: read back, the pixels are the folder's."
    from medvlm.data import load, read_image, write_hf_parquet
    from medvlm.shards import write_shards
    folder = load(str(write_dicom_rocov2(synthetic_pairs(8).records, tmp_path/'dicom')))
    write_shards(folder, tmp_path/'shards')
    write_hf_parquet(folder.records, tmp_path/'parquet')
    for other in (load(str(tmp_path/'shards')), load(str(tmp_path/'parquet'))):
        assert sorted(r.id for r in other.records) == sorted(r.id for r in folder.records)
        pixels = {r.id: read_image(r.image) for r in other.records}
        for r in folder.records: assert (pixels[r.id] == read_image(r.image)).all(), r.id
