# ruff: noqa: B018, F821
"""What vulture (`make lint`, `make test`; settings in pyproject.toml [tool.vulture]) may not see
used: names that a framework, a library or a serialiser reads. Routes, schedules, queue handlers
and pydantic validators are ignored by their decorators there, not listed here.

Code that only tests use is dead: delete it, or move it into the tests. A name goes here only
with the reason it is alive.
"""

# Read by the libraries they are handed to.
_.STATUS_CODE  # chalice: the HTTP status of a ChaliceViewError subclass (api.GoneError)
_.model_config  # pydantic: a model's configuration (api.py, ingest/batch_format.py)
_.format  # pydantic: a batch manifest's field, validated, never read (ingest/batch_format.py)
_.aws_request_id  # powertools: the local pump's stand-in Lambda context (local/pump.py)
_.memory_limit_in_mb
_.invoked_function_arn
_.abstract  # pynamodb: Meta of the abstract base model (store/tables.py)
_.index_name  # pynamodb: Meta of a global secondary index (store/tables.py)
_.projection
_.read_capacity_units
_.write_capacity_units
_.registered_at  # pynamodb: attributes stored for the record, read by no code (store/tables.py)
_.written_at
_.get_session  # pynamodb: its session factory, pointed at the shared one (store/tables.py)
_.intra_op_num_threads  # onnxruntime: SessionOptions (matching/coarse.py, vision/models.py)
_.inter_op_num_threads
_.graph_optimization_level
_.log_severity_level
_.dim_param  # onnx: a graph input's symbolic batch dimension (vision/models.py)
_.compress_type  # zipfile: ZipInfo of the function and layer zips (infra/, layers/)
_.prop  # a Protocol method's parameter: cv2.VideoCapture.get (gateway/capture.py)

# Written out whole (dataclasses.asdict, JSON): fields that are reported, not read by code.
_.failed_at  # ops/dlq.py: DeadLetter, `lfr dlq list`
_.sent_at
_.age_s
_.computed  # ops/bulk_report.py: BulkSummary, `lfr enroll-bulk`'s summary

# Specifications that tests hold the product to.
_.STATE_KEYS  # ingest/continuity.py: what a stored camera state may hold (privacy tests)
_.longest_redelivery_s  # queue_timing.py: the bound continuity's and the applied TTLs must pass
_.Arn  # infra/policies.py: a type alias (edited elsewhere in issue 24: left as it is)
_.wildcard_actions  # infra/policies.py: test_deploy_templates' check (as above)
