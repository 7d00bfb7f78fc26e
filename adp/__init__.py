"""ember.adp: the Agent Data Protocol — read, convert, validate and export agent trajectories.

    from ember.adp import read_records, convert_record, export_trajectory, validate_file

    raw = next(read_records("examples/data/adp/agenttuning_os.json"))
    [traj] = convert_record(raw, source="agenttuning_os")   # raw record -> ADP trajectory
    chat = export_trajectory(traj, "sft-chat")               # -> {"id", "messages", "tools"}
    convert_files(["raw.jsonl"], "adp.jsonl", source="agenttuning_os")  # = ember convert

Names are imported on first use, so ``import ember.adp`` stays cheap (the CLI's start-up
imports this package). docs/python-api.md has the whole public API with examples.
"""

from __future__ import annotations

from ember.adp.dotted import lazy_exports

# public name -> "module:attribute"
_EXPORTS = {
    "read_records": "ember.adp.records:read_records",
    "convert_record": "ember.adp.records:convert_record",
    "export_trajectory": "ember.adp.records:export_trajectory",
    "convert_files": "ember.adp.convert:convert",
    "ConvertError": "ember.adp.mapping:ConvertError",
    "validate_file": "ember.adp.validate:validate_file",
    "check_trajectory": "ember.adp.validate:check_trajectory",
    "write_jsonl": "ember.adp.io:write_jsonl",
    "atomic_writer": "ember.adp.io:atomic_writer",
    "InputError": "ember.adp.io:InputError",
    "trajectory": "ember.adp.model:trajectory",
    "api_action": "ember.adp.model:api_action",
    "code_action": "ember.adp.model:code_action",
    "message_action": "ember.adp.model:message_action",
    "text_observation": "ember.adp.model:text_observation",
    "image_observation": "ember.adp.model:image_observation",
    "web_observation": "ember.adp.model:web_observation",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
