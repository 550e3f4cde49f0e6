"RetrievalCallback against a stand-in for NCCL, which gathers only device tensors (no GPU needed)."
from types import SimpleNamespace
import torch, torch.nn.functional as F
from transformers import AutoTokenizer
import medvlm.retrieval
from medvlm.clip import CLIPOutput, clip_tiny
from medvlm.data import minilm_path
from medvlm.retrieval import RETRIEVAL_KEYS, RetrievalCallback
from medvlm.synthetic import synthetic_pairs

class OnDevice(torch.Tensor):
    "A tensor that stands for one on an accelerator: `.cpu()` copies it to the host (a plain tensor)."
    def cpu(self): return self.as_subclass(torch.Tensor)

def nccl_gather_rows(x, pad=0):
    "One process's `gather_rows` over NCCL, which refuses host tensors."
    assert isinstance(x, OnDevice), "NCCL gathers only device tensors, got a host tensor"
    return x

def test_retrieval_callback_gathers_on_the_device(monkeypatch):
    monkeypatch.setattr(medvlm.retrieval, 'gather_rows', nccl_gather_rows)
    tok = AutoTokenizer.from_pretrained(minilm_path())
    recs = synthetic_pairs(8).records
    enc = tok([r.caption for r in recs], padding=True, return_tensors='pt')
    emb = F.normalize(torch.randn(8, 64, generator=torch.Generator().manual_seed(0)), dim=-1)
    pred = CLIPOutput(emb.as_subclass(OnDevice), emb.clone().as_subclass(OnDevice), torch.tensor(1.), enc['input_ids'], enc['attention_mask'])
    cb = RetrievalCallback()
    cb.learn = SimpleNamespace(training=False, pred=pred, dl=SimpleNamespace(n=8, dataset=SimpleNamespace(items=recs)),
                               model=clip_tiny(tok).eval(), dls=SimpleNamespace(tokenizer=tok))
    cb.before_validate(); cb.after_batch(); cb.after_validate()
    assert set(cb.results) == {*RETRIEVAL_KEYS, 'zs_modality_acc'}
    assert cb.results['i2t_r1'] == cb.results['t2i_r1'] == 1.  # each image's text is its own embedding
    assert 0 <= cb.results['zs_modality_acc'] <= 1
