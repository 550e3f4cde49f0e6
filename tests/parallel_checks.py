"""Multi-process checks of `medvlm.parallel`, run by tests/test_parallel.py as `torchrun --nproc_per_node 2 parallel_checks.py OUT.json`.

FSDP2: k AdamW steps of the tiny CLIP sharded over the ranks (each with its slice of the batch, loss on the gathered
embeddings) reach the parameters of one process on the whole batch; with each rank's local loss instead, they do not.
Pipeline: a small untied RoPE `GPT` (medvlm.gpt) in one stage per rank, GPipe over micro-batches, gives the unsplit model's logits, loss and gradients.
Rank 0 writes the largest differences to OUT.json."""
import json, sys
from copy import deepcopy
import torch, torch.nn.functional as F, torch.distributed as dist
from torch.distributed.tensor import DTensor
from medvlm.clip import clip_tiny, contrastive_loss, caption_groups, caption_keys, ContrastiveLoss
from medvlm.distributed import exit_distributed, init_distributed
from medvlm.parallel import fully_shard_clip, pipeline_schedule
from medvlm.gpt import GPT, GPTConfig

def max_over_ranks(x: float) -> float:
    t = torch.tensor(float(x), dtype=torch.float64); dist.all_reduce(t, op=dist.ReduceOp.MAX); return t.item()

def clip_batches(steps, bs, vocab, seed=1):
    "The same `steps` global batches on every rank: images, token ids framed by [CLS]/[SEP], full masks."
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ids = torch.randint(1000, vocab, (bs, 12), generator=g); ids[:, 0], ids[:, -1] = 101, 102
        yield torch.randn(bs, 3, 64, 64, generator=g), ids, torch.ones_like(ids)

LR = 1e-3

def train_clip(model, steps, bs, loss, shard=slice(None)):
    "`steps` AdamW steps on this rank's `shard` of each global batch; the losses."
    opt, losses = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.1), []
    for xb in clip_batches(steps, bs, model.text.config.vocab_size):
        l = loss(model(*(x[shard] for x in xb)))
        l.backward(); opt.step(); opt.zero_grad(); losses.append(l.item())
    return losses

def full_params(model) -> dict:
    return {n: (p.full_tensor() if isinstance(p, DTensor) else p).detach() for n, p in model.named_parameters()}

# Attention key biases: softmax ignores a shift shared by a query's scores, so their true gradient is 0 and what
# backward gives is float noise (~1e-9) that differs with the batch split. AdamW divides by its own running size,
# turning noise into steps of up to lr, so with another batch split these parameters agree only to steps * lr.
ZERO_GRAD = 'k_proj.bias'

def check_fsdp(steps=3, bs=8):
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    init = clip_tiny()
    mine = slice(rank * bs // world, (rank + 1) * bs // world)
    single = deepcopy(init)
    one_process = lambda o: contrastive_loss(o.image, o.text, o.logit_scale, caption_groups(caption_keys(o.input_ids, o.attention_mask)))
    ref_losses = train_clip(single, steps, bs, one_process)  # the plain function: no gathering
    ref = full_params(single)
    res = {}
    for name, loss in (('global', ContrastiveLoss()),  # gathers every rank's embeddings
                       ('local', one_process)):
        sharded = fully_shard_clip(deepcopy(init))
        losses = train_clip(sharded, steps, bs, loss, mine)
        got = full_params(sharded)
        assert got.keys() == ref.keys()
        diffs = {n: (got[n] - ref[n]).abs().max().item() for n in ref}
        res[f'{name}_max_param_diff'] = max_over_ranks(max(d for n, d in diffs.items() if not n.endswith(ZERO_GRAD)))
        res[f'{name}_key_bias_max_diff'] = max_over_ranks(max(d for n, d in diffs.items() if n.endswith(ZERO_GRAD)))
        res[f'{name}_max_loss_diff'] = max_over_ranks(max(abs(a - b) for a, b in zip(losses, ref_losses)))
    res['max_param_change'] = max((ref[n] - p).abs().max().item() for n, p in init.named_parameters())
    res['lr'], res['n_params'], res['steps'], res['global_bs'], res['world'] = LR, len(ref), steps, bs, world
    return res

def lm_loss(logits, targets): return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

def check_pipeline(bs=8, n_microbatches=4):
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=128, block_size=32, n_layer=4, n_head=2, n_embd=32, pos="rope", tie_head=False))
    ref = deepcopy(model)
    g = torch.Generator().manual_seed(2)
    idx = torch.randint(0, 128, (bs, 17), generator=g)
    x, y = idx[:, :-1], idx[:, 1:]
    ref_logits = ref(x); ref_loss = lm_loss(ref_logits, y); ref_loss.backward()
    schedule, stage = pipeline_schedule(model, n_microbatches, loss_fn=lm_loss)
    res = {}
    if rank == 0: schedule.step(x)
    elif rank == world - 1:
        losses = []
        logits = schedule.step(target=y, losses=losses)
        res['logits_max_diff'] = (logits - ref_logits).abs().max().item()
        res['loss_diff'] = abs(torch.stack(losses).mean().item() - ref_loss.item())
    else: schedule.step()
    ref_grads = dict(ref.named_parameters())
    mine = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    grad_diff = max((g - ref_grads[n].grad).abs().max().item() for n, g in mine.items())
    n_with_grad = torch.tensor(len(mine)); dist.all_reduce(n_with_grad)
    res = {k: max_over_ranks(res.get(k, 0.)) for k in ('logits_max_diff', 'loss_diff')}
    res.update(grad_max_diff=max_over_ranks(grad_diff), params_with_grad=n_with_grad.item(),
               n_params=len(ref_grads), stage_blocks=len(stage.blocks), n_microbatches=n_microbatches, world=world)
    return res

if __name__ == '__main__':
    init_distributed()
    res = dict(fsdp=check_fsdp(), pipeline=check_pipeline())
    if dist.get_rank() == 0:
        with open(sys.argv[1], 'w') as f: json.dump(res, f, indent=1)
    exit_distributed()
