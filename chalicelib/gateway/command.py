"""`lfr gateway`: one camera's gateway for a deployment day. `add_commands(subparsers)` is wired
into chalicelib/cli.py.

    lfr gateway SOURCE --deployment D --camera C --api URL --token-file F

runs as the camera's own principal: it fetches its upload grant from the API and renews it,
re-reads the token file when it changes, reports its state every LFR_GATEWAY_HEARTBEAT_S, and
on SIGTERM (or Ctrl-C) flushes its queue within --flush-s and exits 0. Its last line on stdout
is one JSON object: frames read, sent and shed (by reason), batches, retries, renewals,
reconnects. On AWS, `--cognito-client-id ID --refresh-token-file F` instead of --token-file: the
gateway refreshes the camera's Cognito ID token itself (gateway/cognito.py). `--grant FILE`
uploads with a fixed grant (tests, one-off uploads); with neither, a grant is issued from the
local stack's credentials.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

LocalGrant = Callable[[Any, str, str], dict[str, Any]]


def _aware_time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone (e.g. ...T10:00:00Z)")
    return t


def cmd_gateway(args: argparse.Namespace) -> int:
    import requests

    from chalicelib.gateway.grants import ApiGrants, FileGrant, TokenFile
    from chalicelib.gateway.heartbeat import Heartbeat
    from chalicelib.gateway.options import GatewayOptions
    from chalicelib.gateway.run import run_gateway
    from chalicelib.gateway.stats import GatewayStats
    from chalicelib.gateway.uplink import PresignedUploader
    from chalicelib.settings import Settings

    s = Settings.from_env()
    opts = GatewayOptions(fps=args.fps, batch_frames=args.batch_frames, realtime=args.realtime,
                          start=args.start, max_side=args.max_side,
                          jpeg_quality=args.jpeg_quality, max_age_s=args.max_age_s,
                          queue_bytes=int(args.queue_mb * 1024 * 1024),
                          heartbeat_s=s.gateway_heartbeat_s, flush_s=args.flush_s)
    http = requests.Session()  # honours HTTP_PROXY, HTTPS_PROXY and NO_PROXY
    stats = GatewayStats()
    grants: Any
    heartbeat = None
    if args.api:
        token: Any
        if args.refresh_token_file and args.cognito_client_id:
            from chalicelib.gateway.cognito import CognitoToken, cognito_endpoint

            token = CognitoToken(args.cognito_endpoint or cognito_endpoint(s.region),
                                 args.cognito_client_id, args.refresh_token_file, http)
        elif args.token_file:
            token = TokenFile(args.token_file)
        else:
            print("--api needs the camera's credential: --token-file, or "
                  "--cognito-client-id with --refresh-token-file", file=sys.stderr)
            return 2
        grants = ApiGrants(args.api, args.deployment, args.camera, token, http,
                           _monotonic, on_renewal=lambda: stats.add(grant_renewals=1))
        heartbeat = Heartbeat(args.api, args.deployment, args.camera, token, http, stats,
                              opts.heartbeat_s)
    elif args.grant:
        grants = FileGrant(json.loads(Path(args.grant).read_text()))
    elif args.local_grant is not None:  # the local stack's own credentials (cli.py)
        grants = FileGrant(args.local_grant(s, args.deployment, args.camera))
    else:
        print("give --api (with the camera's credential) or --grant FILE", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    report = run_gateway(args.source, PresignedUploader(grants, http, opts.upload_timeout_s),
                         args.deployment, args.camera, opts, first_sequence=args.first_sequence,
                         stop=stop, stats=stats, heartbeat=heartbeat)
    print(json.dumps({**report.summary, "batches": len(report.batches),
                      "stopped_by": "signal" if stop.is_set() else "end of source"}),
          flush=True)
    return 0


def _monotonic() -> float:
    import time

    return time.monotonic()


def add_commands(sub: Any, local_grant: LocalGrant | None = None) -> None:
    """`local_grant(settings, deployment, camera)`: a grant issued with the local stack's own
    credentials, for `lfr gateway` with neither --api nor --grant; the caller supplies it, so
    the gateway itself never imports the cloud side."""
    from chalicelib.gateway.options import GatewayOptions

    d = GatewayOptions()  # one place for the defaults
    gw = sub.add_parser("gateway", help="one camera's gateway: capture, batch and upload")
    gw.add_argument("source", help="a video file, an image folder, a camera index or a URL")
    gw.add_argument("--deployment", required=True)
    gw.add_argument("--camera", required=True)
    gw.add_argument("--api", help="the API's base URL: grants are fetched and renewed there")
    gw.add_argument("--token-file", help="file holding the camera's bearer token (re-read "
                    "when it changes); with --api")
    gw.add_argument("--cognito-client-id", help="on AWS: the user pool app client; with "
                    "--refresh-token-file, the gateway keeps the camera's ID token fresh itself")
    gw.add_argument("--refresh-token-file", help="file holding the camera's Cognito refresh "
                    "token (re-read when it changes)")
    gw.add_argument("--cognito-endpoint", help="default: cognito-idp.<AWS_REGION>.amazonaws.com")
    gw.add_argument("--grant", help="JSON file with a fixed upload grant (tests, one-off)")
    gw.add_argument("--fps", type=float, default=d.fps,
                    help="frames sampled per second of footage; a folder's frame rate")
    gw.add_argument("--batch-frames", type=int, default=d.batch_frames)
    gw.add_argument("--first-sequence", type=int, default=None,
                    help="count batch sequences from N (default: capture time in ms, which a "
                    "restart never reuses)")
    gw.add_argument("--realtime", action="store_true",
                    help="send a file or folder no faster than it was recorded")
    gw.add_argument("--start", type=_aware_time,
                    help="capture time of a file's or folder's first frame (ISO 8601 with a "
                    "time zone; default: when the gateway starts)")
    gw.add_argument("--max-side", type=int, default=d.max_side,
                    help="frames are downscaled to this (docs/bandwidth.md)")
    gw.add_argument("--jpeg-quality", type=int, default=d.jpeg_quality)
    gw.add_argument("--max-age-s", type=float, default=d.max_age_s,
                    help="a batch is retried until its first frame is this old, then dropped")
    gw.add_argument("--queue-mb", type=float, default=d.queue_bytes / 2**20,
                    help="memory for batches waiting for the uplink")
    gw.add_argument("--flush-s", type=float, default=d.flush_s,
                    help="on SIGTERM, how long the queue may take to drain")
    gw.set_defaults(func=cmd_gateway, local_grant=local_grant)
