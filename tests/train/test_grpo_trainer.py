"""SelectiveGRPOTrainer against the installed TRL, without loading a model.

The trainer overrides private methods of TRL's GRPOTrainer; TRL may change them in any
release. These tests compare the installed TRL with the table in train/grpo_trainer.py
(TRL_OVERRIDES, TRL_ATTRIBUTES), so that a TRL outside the checked range fails here with
the method named rather than somewhere in the middle of a training run.
"""

import inspect
import subprocess
import sys

import pytest

RECHECK = ("re-check the overrides in train/grpo_trainer.py against this TRL (and update "
           "TRL_OVERRIDES) before widening the trl pin in pyproject.toml")


def _trl():
    import trl
    from trl import GRPOTrainer

    from ember.train import grpo_trainer

    return trl.__version__, GRPOTrainer, grpo_trainer


@pytest.mark.parametrize("name", ["_prepare_inputs", "_calculate_rewards", "_save_checkpoint",
                                  "_load_optimizer_and_scheduler", "_get_output_dir"])
def test_overridden_trl_methods_keep_the_parameters_we_rely_on(name):
    version, GRPOTrainer, grpo_trainer = _trl()
    expected = grpo_trainer.TRL_OVERRIDES[name]
    method = getattr(GRPOTrainer, name, None)
    assert method is not None, f"trl {version}: GRPOTrainer has no method {name}; {RECHECK}"
    actual = tuple(inspect.signature(method).parameters)
    assert actual == expected, (f"trl {version}: GRPOTrainer.{name} takes {actual}, "
                                f"train/grpo_trainer.py expects {expected}; {RECHECK}")


def test_the_table_lists_every_trl_method_the_trainer_overrides():
    version, GRPOTrainer, grpo_trainer = _trl()
    overridden = {name for name, value in vars(grpo_trainer.SelectiveGRPOTrainer).items()
                  if callable(value) and name != "__init__" and hasattr(GRPOTrainer, name)}
    missing = overridden - set(grpo_trainer.TRL_OVERRIDES)
    assert not missing, f"SelectiveGRPOTrainer overrides {sorted(missing)} of trl {version} " \
                        "without an entry in TRL_OVERRIDES"


def test_trl_still_sets_the_attributes_the_overrides_read():
    version, GRPOTrainer, grpo_trainer = _trl()
    source = inspect.getsource(GRPOTrainer)
    gone = [a for a in grpo_trainer.TRL_ATTRIBUTES if f"self.{a} =" not in source]
    assert not gone, f"trl {version}: GRPOTrainer no longer sets {gone}; {RECHECK}"


def test_importing_the_train_package_does_not_import_trl_or_torch():
    code = ("import sys, ember.train, ember.train.rft, ember.train.stages; "
            "print(sorted(m for m in ('trl', 'torch', 'transformers') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_resume_cuts_the_selection_log_back_and_drops_a_torn_line(tmp_path):
    from ember.train.grpo_trainer import _cut_log

    log = tmp_path / "selection.jsonl"
    log.write_text('{"step": 0}\n{"step": 1}\n{"step": 2}\n{"step": 3, "task')  # killed mid-write
    _cut_log(log, 2)
    assert log.read_text() == '{"step": 0}\n{"step": 1}\n'
