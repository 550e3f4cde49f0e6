"tests/gpu_check.py (`make gpu-check`): it skips cleanly without CUDA and passes every check with it."
import pytest, torch
from conftest import BIN, ROOT, launch

GPU_CHECK = ROOT/'tests'/'gpu_check.py'

@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the GPU test below runs instead")
def test_skips_without_cuda():
    res = launch([BIN/'python', GPU_CHECK])
    assert res.returncode == 0
    assert 'skipped (no CUDA device)' in res.stdout and 'FAIL' not in res.stdout

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_passes_on_gpu():
    res = launch([BIN/'python', GPU_CHECK], check=False)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    verdicts = [l.split()[0] for l in res.stdout.splitlines() if l.startswith(('PASS', 'FAIL'))]
    assert verdicts and set(verdicts) == {'PASS'}, res.stdout
