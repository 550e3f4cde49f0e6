import os, sys, subprocess
from pathlib import Path
import pytest
from medvlm.data import data_root

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

@pytest.fixture(scope='session')
def shared_data():
    "The real samples' folder; tests that need it skip on a clone without it."
    root = data_root()
    if root is None: pytest.skip("no real data: set MEDVLM_DATA or put shared/data beside the checkout")
    return root

@pytest.fixture(scope='session')
def roco_dir(shared_data):
    d = shared_data/'roco-ccby-1000'
    if not d.is_dir(): pytest.skip(f"{d} is absent")
    return d

def launch(cmd, cwd=ROOT, check=True, **env):
    "Run a command offline (HF hub, W&B) with `env` added; return the CompletedProcess, or raise with its output if it failed."
    env = dict(os.environ, HF_HUB_OFFLINE='1', WANDB_MODE='offline', MPLBACKEND='Agg', **env)
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and res.returncode != 0: raise AssertionError(f"{cmd} exited {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res

def run_cli(name, *args, cwd=ROOT, check=True):
    "Run an installed console script; return the CompletedProcess."
    return launch([BIN/name, *args], cwd, check)
