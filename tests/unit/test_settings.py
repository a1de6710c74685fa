"""Settings that would break the retention policy are refused when the settings are built, and
settings are read without side effects."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from chalicelib.settings import Settings


def test_the_unbound_watchlist_limit_stays_inside_the_policy() -> None:
    assert Settings.from_env({}).watchlist_unbound_hours == 12
    assert Settings.from_env({"LFR_WATCHLIST_UNBOUND_HOURS": "23"}).watchlist_unbound_hours == 23
    # 24 h plus up to one 15 min sweep interval would pass the policy's 24 h.
    for hours in ("24", "48", "0"):
        with pytest.raises(ValueError, match="LFR_WATCHLIST_UNBOUND_HOURS"):
            Settings.from_env({"LFR_WATCHLIST_UNBOUND_HOURS": hours})


def test_a_dead_lettered_batch_s_frames_are_held_less_than_the_bucket_s_day() -> None:
    assert Settings.from_env({}).dead_letter_frames_hours == 6
    for hours in ("0", "24", "48"):
        with pytest.raises(ValueError, match="LFR_DEAD_LETTER_FRAMES_HOURS"):
            Settings.from_env({"LFR_DEAD_LETTER_FRAMES_HOURS": hours})


def test_settings_of_the_local_stack_are_read_without_writing_os_environ(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lfr` reads the stack `lfr local up` left (.lfr/local.json) into a Settings value: its
    endpoint, secrets and placeholder keys reach the clients through it, and os.environ stays
    as it was (a second stack, or a test, in the same process sees none of the first)."""
    from chalicelib import clients
    from chalicelib.local import moto_server, state
    from chalicelib.store.tables import tables

    for k in [k for k in os.environ if k.startswith(("AWS_", "LFR_"))]:
        monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    state.STATE.parent.mkdir()
    state.STATE.write_text(json.dumps({"env": {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5999", "LFR_STAGE": "local",
        "LFR_LOCAL_AUTH_SECRET": "abc", "LFR_LINK_SECRET": "def"}}))
    before = dict(os.environ)
    s = state.local_settings()
    assert dict(os.environ) == before
    assert (s.endpoint_url, s.stage, s.local_auth_secret) == ("http://127.0.0.1:5999", "local",
                                                              "abc")
    assert s.credentials == moto_server.CREDENTIALS and "testing" not in repr(s)
    signer = clients.client("s3", s)._request_signer  # the keys were handed to the client
    assert signer._credentials.access_key == moto_server.LOCAL_ENV["AWS_ACCESS_KEY_ID"]
    assert tables(s).Alert.Meta.aws_secret_access_key == moto_server.LOCAL_ENV[
        "AWS_SECRET_ACCESS_KEY"]
    # An endpoint in the environment wins over the state file, and carries no keys of ours.
    assert state.local_settings({"AWS_ENDPOINT_URL": "http://x:1"}).credentials == ()
    assert dict(os.environ) == before


def test_credentials_are_never_read_from_lfr_variables() -> None:
    assert Settings.from_env({"LFR_CREDENTIALS": "a,b,c"}).credentials == ()
