"""Exporters: ADP trajectory -> a training or interchange format (``ember convert --to``).

Each module defines ``export(trajectory: dict) -> dict`` (one output record) and may
raise ``ember.adp.mapping.ConvertError`` for a trajectory it cannot represent.
``sft-chat`` records are written so that files of any datasets load together with
``datasets.load_dataset("json", ...)`` and TRL reads them as they are (``tools`` as JSON
text; see ``ember.adp.export.sft_chat``).
"""

EXPORTERS = {
    "adp": None,  # no export: write ADP itself
    "sft-chat": "ember.adp.export.sft_chat",    # OpenAI chat messages + tools (TRL SFT)
    "openhands": "ember.adp.export.openhands",  # ShareGPT text, OpenHands tool syntax
    "sweagent": "ember.adp.export.sweagent",    # ShareGPT text, SWE-agent tool syntax
    "atif": "ember.adp.export.atif",            # Harbor ATIF
}
