"""ADP input: records already in ADP (ours or published v1), checked and upgraded.

Published v1 records carry `<finish>`/`<solution>` tags inside message text; reading them
here turns those into ember's `final` and `answer` fields, so exporters see one form.
Records come out loadable by ADP's own data model whatever wrote them: keys it requires
are added as null where missing, and details of other types than string (older ember
files wrote them typed) become their JSON text, named in `json_details`, so files old and
new read back to the same typed details. Every other key is kept as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from ember.adp.mapping import (BaseMapping, ConvertError, get_field, mark_final, record_id,
                               typed)
from ember.adp.model import (EVENT_CLASSES, SCHEMA_VERSION, conform, details_of, split_details,
                             split_final_tags)


@dataclass
class Mapping(BaseMapping):
    pass


def converter(mapping: Mapping):
    def convert(record: dict) -> dict:
        content = typed(get_field(record, "content"), list, "content")
        events = []
        for i, event in enumerate(content):
            typed(event, dict, f"content[{i}]")
            cls = event.get("class_")
            if cls not in EVENT_CLASSES:
                raise ConvertError("unknown-event", f"content[{i}].class_ = {cls!r}")
            if cls == "message_action" and "final" not in event and isinstance(
                    event.get("content"), str):
                text, final, answer = split_final_tags(event["content"])
                if final or answer is not None:
                    event = dict(event, content=text)
                    if final:
                        event["final"] = True
                    if answer is not None:
                        event["answer"] = answer
            events.append(conform(event))
        out = dict(record)
        out["id"] = record_id(record, mapping)
        out.setdefault("schema_version", SCHEMA_VERSION)
        out["content"] = events
        out["details"], encoded = split_details(details_of(record))
        if encoded:
            out["json_details"] = encoded
        else:
            out.pop("json_details", None)
        if mapping.final_last and events and events[-1]["class_"] == "message_action":
            events[-1] = dict(events[-1])  # the input's own event stays as it was
            mark_final(events, mapping)
        return out

    return convert
