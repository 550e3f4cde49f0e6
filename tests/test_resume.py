"Fault injection: a run that dies after an epoch resumes from its checkpoint and ends where an uninterrupted run ends."
import json
import pytest
from fastai.callback.core import Callback
from medvlm.clip import load_clip
from medvlm.train import train_clip

class Crash(Callback):
    "Raise after epoch `at` has finished (and been checkpointed)."
    order = 100
    def __init__(self, at): self.at = at
    def after_epoch(self):
        if self.epoch == self.at: raise RuntimeError('injected fault')

def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    kw = dict(data='synthetic:256', epochs=3, bs=32, num_workers=0)
    _, full = train_clip(**kw, out=tmp_path/'full')
    with pytest.raises(RuntimeError, match='injected fault'): train_clip(**kw, out=tmp_path/'cut', cbs=[Crash(1)])
    last = tmp_path/'cut'/'last'
    assert json.loads((last/'trainer.json').read_text())['epoch'] == 1 and not (tmp_path/'cut'/'metrics.json').exists()
    assert not [p for p in last.rglob('*') if p.suffix in ('.pt', '.pth', '.bin', '.pkl')]  # nothing to unpickle
    at_crash = load_clip(last/'model')[0].state_dict()
    _, resumed = train_clip(**kw, out=tmp_path/'cut', resume=True)
    assert (resumed['resumed_at'], resumed['epochs']) == (2, 3)
    a, b = (load_clip(tmp_path/d/'model')[0].state_dict() for d in ('full', 'cut'))
    assert max((b[k] - at_crash[k]).abs().max().item() for k in b) > 1e-4  # the resumed epoch really trained
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    assert resumed['final'] == pytest.approx(full['final'])
