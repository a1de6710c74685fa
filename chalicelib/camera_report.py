"""What a camera gateway reports to the API (its heartbeat), shared by both sides: the gateway
(chalicelib/gateway/) counts under these names, the API (api.Heartbeat) accepts only these."""

# Why a frame was not sent. The order is the shedding policy's: thin first, then drop the
# oldest; the others are the uplink's and the grant's verdicts.
SHED_REASONS = (
    "thinned",  # the uplink fell behind: fewer frames per second
    "queue_full",  # still behind with the rate thinned: the oldest batches went first
    "expired",  # retried until the batch was max_age_s old
    "rejected",  # refused for good (a 4xx that no new grant cures)
    "not_running",  # the API refused a grant: the deployment is not running now
    "shutdown",  # still queued when the flush bound of a SIGTERM ran out
    "encode_failed",  # a frame that would not encode
)
SOURCE_STATES = ("opening", "streaming", "reconnecting", "ended")
