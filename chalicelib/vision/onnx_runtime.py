"""onnxruntime, imported with its usage telemetry off. Import `ort` from here, never directly.

Since 1.29 the Linux wheels collect usage telemetry (1DS): at import they write a device id and
an event cache under ~/.cache/Microsoft/DeveloperTools/ and may upload it. A service that
processes faces sends nothing to third parties, so it is off. `ORT_DISABLE_TELEMETRY=1` is the
full opt-out, read once when onnxruntime initialises (so it must be set before the import);
`disable_telemetry_events()` only stops later events (on Windows builds it is the switch).
The Lambda and batch environments set the variable as well (.chalice/config.json, Dockerfile),
so it holds even for code that imports onnxruntime before this module.
"""

from __future__ import annotations

import logging
import os
import sys

if "onnxruntime" in sys.modules and os.environ.get("ORT_DISABLE_TELEMETRY") != "1":
    logging.getLogger("lfr.vision").warning(
        "onnxruntime was imported before its telemetry was switched off; set "
        "ORT_DISABLE_TELEMETRY=1 in the environment")
# A write, not a setting read: the variable is onnxruntime's, for the process it runs in.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

import onnxruntime as ort  # noqa: E402

ort.disable_telemetry_events()

__all__ = ["ort"]
