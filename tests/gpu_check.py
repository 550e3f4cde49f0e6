"""The checks that need a CUDA GPU, in one command: `make gpu-check` (or `python tests/gpu_check.py`).

1. the library picks the GPU (`init_distributed().device`);
2. `medvlm_train_clip` on 512 synthetic pairs for 8 epochs, in bf16 and in fp16: the tiny ViT's attention rollout, the
   retrieval callback and zero-shot classification run on the GPU;
3. `medvlm_eval_clip` on the bf16 run's `best/` model reproduces that epoch's validation retrieval;
4. tests/dist_checks.py under `torchrun` with NCCL, one process per GPU (two at most; on a single GPU one process, since
   NCCL does not put two ranks on one device): loss, gradients, sampler and sharded evaluation against one process;
5. `medvlm_train_gpt` (the medvlm recipe: RoPE, QK-norm, ReLU², Muon) in bf16 and fp16 on synthetic reports: the loss falls
   and stays finite; KV-cache generation on the GPU equals a full forward pass, for learned, RoPE and ALiBi positions;
6. what ALiBi's float attention mask costs on the GPU (it rules out the flash kernel): forward + backward of one
   attention layer at T = 1024, causal flash against the ALiBi bias, side by side.

One PASS or FAIL line per check (a failure's output tail follows it); exit status 1 if any failed. Without CUDA it says
that it skipped and exits 0. `--cpu`, on a machine without CUDA, runs the same checks on the CPU (gloo, 2 processes) to
try this script itself."""
import argparse, json, math, sys, tempfile, time
from pathlib import Path
import torch
from conftest import BIN, ROOT, launch, run_cli
from medvlm.clip import load_clip
from medvlm.gpt import GPT, GPTConfig, KVCache, alibi_bias, generate
from medvlm.gpt_train import medvlm
from medvlm.distributed import init_distributed
from medvlm.retrieval import RetrievalCallback
from medvlm.train import clip_learner
import dist_checks

DATA = 'synthetic:512'

def check_device(cpu):
    device = init_distributed().device
    assert device.type == ('cpu' if cpu else 'cuda'), f"the library chose {device}"
    if cpu: return str(device)
    return f"{device}: {torch.cuda.get_device_name(device)}, {torch.cuda.device_count()} GPU(s), torch {torch.__version__}"

def check_train(out, precision):
    run_cli('medvlm_train_clip', '--data', DATA, '--epochs', 8, '--precision', precision, '--out', out)
    m = json.loads((out/'metrics.json').read_text())
    assert m['epochs'] == 8, m['epochs']
    assert (out/'best'/'model.safetensors').exists() and (out/'model'/'model.safetensors').exists(), "no saved model"
    bad = {k: v for k, v in m['final'].items() if not math.isfinite(v)}
    assert not bad, f"non-finite validation metrics: {bad}"
    return (f"{m['n_train']} train / {m['n_val']} valid pairs, {m['samples_per_s']} pairs/s, final mean recall "
            f"{m['final']['mean_recall']:.3f}, zero-shot modality accuracy {m['final']['zs_modality_acc']:.3f}")

def check_eval(run, precision, out):
    run_cli('medvlm_eval_clip', '--model', run/'best', '--data', DATA, '--split', 'valid', '--precision', precision, '--out', out)
    ev, m = json.loads((out/'metrics.json').read_text()), json.loads((run/'metrics.json').read_text())
    assert ev['n_val'] == m['n_val'], (ev['n_val'], m['n_val'])
    diff = {k: abs(ev[k] - v) for k, v in m['best'].items() if k in ev}
    assert diff and max(diff.values()) < 1e-4, f"eval differs from the best epoch's validation: {diff}"
    return f"{ev['n_val']} pairs, mean recall {ev['mean_recall']:.3f} = the best epoch's (max diff {max(diff.values()):.1e})"

def check_dist(out, nprocs, backend):
    run = launch([BIN/'torchrun', '--standalone', '--nproc_per_node', nprocs, ROOT/'tests'/'dist_checks.py', out], check=False, OMP_NUM_THREADS='1')
    ranks = [l for l in run.stderr.splitlines() if l.startswith('[rank')]  # the ranks' own tracebacks, not torchrun's summary
    assert run.returncode == 0, f"torchrun exited {run.returncode}\n" + '\n'.join(ranks or run.stderr.splitlines())
    res = json.loads((out/'results.json').read_text())
    assert res['world'] == nprocs, res['world']
    for variant in ('loss_global', 'loss_local'):
        r = res[variant]
        errs = dict(loss=abs(r['loss'] - r['ref_loss']), grad=r['grad_err'], scale_grad=abs(r['scale_grad'] - r['ref_scale_grad']))
        assert max(errs.values()) < 1e-5, f"{variant} differs from one process: {errs}"
    for epoch in zip(*res['sampler']):  # each epoch: every item on exactly one rank
        assert sorted(x for rank in epoch for x in rank) == list(range(20)), f"sampler shards overlap or miss items: {epoch}"
    learn = clip_learner(dist_checks.valid_dls(), load_clip(out/'eval_model')[0], precision='fp32')
    with learn.no_bar(): learn.validate()
    ref = learn.cbs.filter(lambda c: isinstance(c, RetrievalCallback))[0].results
    diff = max(abs(res['eval'][k] - v) for k, v in ref.items())
    assert diff < 1e-4, f"sharded evaluation differs from one process by {diff}: {res['eval']} vs {ref}"
    return f"{nprocs} process(es) over {backend}: loss, gradients, sampler and sharded evaluation equal one process's"

def check_gpt_train(out, precision):
    recipe = out/f'recipe-{precision}.json'; out.mkdir(parents=True, exist_ok=True)
    recipe.write_text(json.dumps({**vars(medvlm()), 'precision': precision}))
    run_cli('medvlm_train_gpt', '--data', 'synthetic-reports:256', '--recipe', recipe, '--steps', 300, '--eval-every', 100, '--out', out/precision)
    m = json.loads((out/precision/'metrics.json').read_text())
    losses = [c['val_loss'] for c in m['curve']]
    assert m['precision'] == precision and all(math.isfinite(l) for l in losses), (m['precision'], losses)
    assert losses[-1] < 0.5 * math.log(m['config']['vocab_size']), f"validation loss {losses[-1]:.3f} did not fall"
    return f"{m['steps']} steps, {m['tokens_per_s']:,.0f} tokens/s, validation loss {losses[0]:.3f} -> {losses[-1]:.3f}"

@torch.no_grad()
def check_gpt_cache(device):
    worst = {}
    for pos in ('learned', 'rope', 'alibi'):
        torch.manual_seed(0)
        m = GPT(GPTConfig(vocab_size=64, block_size=64, n_layer=2, n_head=4, n_embd=64, pos=pos)).to(device).eval()
        prompt = torch.randint(0, 64, (3, 5), device=device)
        seq = generate(m, prompt, 20, greedy=True)
        cache, steps = KVCache(2), []
        steps.append(m(prompt, cache=cache)[:, -1])
        for t in range(5, seq.shape[1] - 1): steps.append(m(seq[:, t:t + 1], cache=cache)[:, -1])
        worst[pos] = float((torch.stack(steps, 1) - m(seq)[:, 4:-1]).abs().max())
    assert max(worst.values()) < 1e-3, f"KV-cache logits differ from a full pass: {worst}"
    return ', '.join(f"{k} {v:.1e}" for k, v in worst.items())

def check_alibi_cost(device, T=1024, reps=20):
    q, k, v = (torch.randn(8, 8, T, 64, device=device, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    bias = alibi_bias(8, T, T, device).to(torch.bfloat16)
    def timed(**mask):
        for _ in range(3): torch.nn.functional.scaled_dot_product_attention(q, k, v, **mask).sum().backward()
        torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(reps): torch.nn.functional.scaled_dot_product_attention(q, k, v, **mask).sum().backward()
        torch.cuda.synchronize(); return (time.perf_counter() - t) / reps * 1e3
    flash, alibi = timed(is_causal=True), timed(attn_mask=bias)
    return f"causal (flash) {flash:.2f} ms, ALiBi float mask {alibi:.2f} ms: ALiBi costs {alibi / flash:.2f}x per attention layer"

def main(cpu=False, keep=None) -> int:
    "Run every check; the exit status."
    if not (cpu or torch.cuda.is_available()):
        print("gpu_check: skipped (no CUDA device); `make gpu-check` on a machine with a GPU runs it")
        return 0
    nprocs = 2 if cpu else min(2, torch.cuda.device_count())
    out = Path(keep or tempfile.mkdtemp(prefix='medvlm_gpu_check_'))
    checks = [('device', lambda: check_device(cpu)),
              *[(f'train {p}', lambda p=p: check_train(out/p, p)) for p in ('bf16', 'fp16')],
              ('eval bf16 best', lambda: check_eval(out/'bf16', 'bf16', out/'eval')),
              (f'dist_checks x{nprocs}', lambda: check_dist(out/'dist', nprocs, 'gloo' if cpu else 'NCCL')),
              *[(f'gpt train {p}', lambda p=p: check_gpt_train(out/'gpt', p)) for p in ('bf16', 'fp16')],
              ('gpt kv-cache', lambda: check_gpt_cache(init_distributed().device)),
              *([] if cpu else [('alibi cost', lambda: check_alibi_cost(init_distributed().device))])]
    if nprocs == 1: print("gpu_check: one GPU, so dist_checks.py runs as 1 process (NCCL puts one rank per device)")
    failed = 0
    for name, check in checks:
        start = time.time()
        try: verdict, detail = 'PASS', check()
        except Exception as e: verdict, detail, failed = 'FAIL', f"{type(e).__name__}: {e}", failed + 1
        line, *more = detail.splitlines() or ['']
        print(f"{verdict} {name} ({time.time() - start:.0f} s): {line}", *('    ' + l for l in more[-40:]), sep='\n', flush=True)
    print(f"gpu_check: {len(checks) - failed} passed, {failed} failed (runs in {out})")
    return 1 if failed else 0

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--cpu', action='store_true', help="on a machine without CUDA: run the checks on the CPU (gloo, 2 processes) to try this script")
    p.add_argument('--keep', help="folder for the runs (default: a new temporary folder)")
    sys.exit(main(**vars(p.parse_args())))
