"The recipe search end to end: `medvlm_tune_clip` writes a study and best.json, and `medvlm_train_clip --config` repeats the best trial."
import json, math
import optuna
from conftest import run_cli

def test_config_repeats_the_best_trial(tmp_path):
    run_cli('medvlm_tune_clip', '--data', 'synthetic:128', '--trials', '2', '--epochs', '2', '--study-dir', tmp_path/'study')
    study = optuna.load_study(study_name='clip-recipe', storage=f"sqlite:///{tmp_path/'study'/'study.db'}")
    assert len(study.trials) == 2 and (tmp_path/'study'/'best.json').exists()
    run_cli('medvlm_train_clip', '--config', tmp_path/'study'/'best.json', '--out', tmp_path/'again')
    m = json.loads((tmp_path/'again'/'metrics.json').read_text())
    best = json.loads((tmp_path/'study'/'best.json').read_text())
    assert all(m['config'][k] == v for k, v in best.items()), (m['config'], best)
    assert math.isclose((m['best'] or m['final'])['mean_r10'], study.best_value, abs_tol=1e-9)

def test_config_errors_are_clear(tmp_path):
    (tmp_path/'bad.json').write_text(json.dumps({'learning_rate': 1e-3}))
    res = run_cli('medvlm_train_clip', '--config', tmp_path/'bad.json', check=False)
    assert res.returncode != 0 and 'unknown option(s) learning_rate' in res.stderr
    res = run_cli('medvlm_train_clip', '--config', tmp_path/'missing.json', check=False)
    assert res.returncode != 0 and 'missing.json' in res.stderr and 'Traceback' not in res.stderr
