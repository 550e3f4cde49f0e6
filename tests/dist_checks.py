"""Checks that need several processes; `tests/test_distributed.py` runs this file under `torchrun --nproc_per_node 2`.
Rank 0 writes what each rank measured to `<out>/results.json` (and models to `<out>/`); the test compares them with
single-process references computed in the test process. Functions shared with the test build the same data."""
import json, sys
from pathlib import Path
import torch, torch.nn.functional as F, torch.distributed as dist
from fastai.callback.core import Callback, CancelValidException
from fastai.data.load import DataLoader
from fastai.distributed import DistributedDL
from fastai.torch_core import set_seed
from medvlm.clip import CLIPOutput, ContrastiveLoss, contrastive_loss, caption_groups, build_clip, save_clip
from medvlm.retrieval import RetrievalCallback
from medvlm.train import clip_learner, replay_dls
from medvlm.fastai_fixes import distributed_dl_on_cpu
from medvlm.distributed import init_distributed, rank_world, gather_objects, gather_rows, data_parallel, exit_distributed
from medvlm.dls import ImageTextDataLoaders
from medvlm.synthetic import synthetic_pairs

def features(n=8, d=16):
    "A global batch of unit embeddings whose captions 1 and 6 are identical (they sit on different ranks)."
    g = torch.Generator().manual_seed(0)
    img, txt = F.normalize(torch.randn(n, d, generator=g), dim=-1), F.normalize(torch.randn(n, d, generator=g), dim=-1)
    ids = torch.randint(5, 50, (n, 6), generator=g); ids[6] = ids[1]
    return img, txt, ids

def reference_loss(img, txt, ids, scale, label_smoothing):
    "Single-process loss, its feature gradients and its scale gradient over the global batch."
    img, txt, scale = img.clone().requires_grad_(), txt.clone().requires_grad_(), scale.clone().requires_grad_()
    loss = contrastive_loss(img, txt, scale, caption_groups(ids), label_smoothing)
    loss.backward()
    return loss.item(), img.grad, txt.grad, scale.grad.item()

def device() -> torch.device:
    "This rank's device: a GPU under NCCL (the GPU check), the CPU under gloo."
    return init_distributed().device

def check_loss(local_loss):
    "Each rank's half of the global batch through `ContrastiveLoss` on its device; gradients averaged over ranks as DDP does."
    rank, world = rank_world()
    img, txt, ids = features()
    b, dev = len(img) // world, device()
    rows = slice(rank * b, (rank + 1) * b)
    li, lt = img[rows].to(dev).requires_grad_(), txt[rows].to(dev).requires_grad_()
    scale = torch.tensor(10., device=dev, requires_grad=True)
    lids = ids[rows].to(dev); mask = torch.ones_like(lids)
    if rank == 1: lids, mask = F.pad(lids, (0, 3)), F.pad(mask, (0, 3))  # this rank's batch padded wider
    loss = ContrastiveLoss(label_smoothing=0.1, local_loss=local_loss)(CLIPOutput(li, lt, scale, lids, mask))
    loss.backward()
    grads = torch.cat([li.grad, lt.grad], 1) / world  # DDP's average over ranks
    scale_grad = scale.grad.clone(); dist.all_reduce(scale_grad); scale_grad /= world
    ref_loss, ref_img, ref_txt, ref_scale = reference_loss(img, txt, ids, torch.tensor(10.), 0.1)
    losses = gather_objects([loss.item()])
    return dict(loss=sum(losses) / world if local_loss else losses[0], losses=losses, ref_loss=ref_loss,
                grad_err=(gather_rows(grads).cpu() - torch.cat([ref_img, ref_txt], 1)).abs().max().item(),
                scale_grad=scale_grad.item(), ref_scale_grad=ref_scale)

def all_valid_dls(n, bs, seed):
    "DataLoaders of `n` synthetic pairs, every one in the (unshuffled, unaugmented) validation split."
    ds = synthetic_pairs(n, size=64, seed=seed)
    return ImageTextDataLoaders.from_dataset(ds, build_clip('tiny')[1], {r.id: 'valid' for r in ds.records}, 64, bs, num_workers=0, augment=False,
                                            device=device())

def valid_dls(n=37, bs=8):
    "37 pairs at bs 8 give uneven shards over 2 ranks."
    return all_valid_dls(n, bs, seed=3)

def check_eval(out):
    "Validation sharded over ranks; rank 0 saves the model and the gathered metrics."
    set_seed(0)
    model = build_clip('tiny')[0]
    dls = valid_dls()
    learn = clip_learner(dls, model, precision='fp32')
    with data_parallel(learn): learn.validate()
    if rank_world()[0] == 0: save_clip(model, dls.tokenizer, out/'eval_model')
    return learn.cbs.filter(lambda c: isinstance(c, RetrievalCallback))[0].results

class NoValidation(Callback):
    def before_validate(self): raise CancelValidException()

def global_batches(k=3, bs=16):
    "`k` fixed global batches of `bs` pairs, and their tokenizer."
    dls = all_valid_dls(k * bs, bs, seed=5)
    return [tuple(b) for b in dls.valid], dls.tokenizer

def steps_learner(items, tok):
    "A CLIP Learner that replays `items` (ready batches) in order, one step each, without validation."
    set_seed(0)
    return clip_learner(replay_dls(items, device(), tok), build_clip('tiny')[0], lr=1e-3, precision='fp32', zero_shot=False, cbs=[NoValidation()])

def rank_items(batches, rank, world):
    "This rank's share of each global batch, in order (what each process sees under data parallelism)."
    return [tuple(x.tensor_split(world)[rank] for x in b) for b in batches]

def check_steps(out):
    "k DDP steps, each rank on its half of every global batch; rank 0 saves the parameters."
    rank, world = rank_world()
    batches, tok = global_batches()
    items = [it for r in range(world) for it in rank_items(batches, r, world)]  # DistributedDL hands out contiguous shares
    learn = steps_learner(items, tok)
    with data_parallel(learn): learn.fit(1, 1e-3)
    if rank == 0: save_clip(learn.model, tok, out/'ddp_model')
    return dict(steps=learn.train_iter)

def check_sampler():
    "Which items each rank sees in two epochs of a shuffled DataLoader (rank 0's order is broadcast)."
    rank, _ = rank_world()
    dl = DataLoader(list(range(20)), bs=5, shuffle=True, drop_last=True)
    dl.rng.seed(100 + rank)  # different local seeds: the broadcast makes them irrelevant
    with distributed_dl_on_cpu():  # what `data_parallel` runs fastai's DistributedDL in
        ddl = DistributedDL(dl)
        return gather_objects([[[int(x) for b in ddl for x in b] for _ in range(2)]])

def main(out):
    out = Path(out)
    init_distributed()
    res = dict(world=rank_world()[1], loss_global=check_loss(False), loss_local=check_loss(True),
               eval=check_eval(out), steps=check_steps(out), sampler=check_sampler())
    if rank_world()[0] == 0: (out/'results.json').write_text(json.dumps(res, indent=1))
    exit_distributed()

if __name__ == '__main__': main(sys.argv[1])
