"""CLI errors: settings errors name the setting and what is wrong, never a value (production refuses weak secrets
and keys); operating-system errors are one line naming the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STRONG = "Zq8-pL2#vX9!mK4@wR7$"
API_KEY = "live-key-Ab3De5Gh7Jk9"
ADMIN_KEY = "admin-key-Ab3De5Gh7Jk9Lm"


def _run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCEFIT_")}
    return subprocess.run(
        [sys.executable, "-c", "from audiencefit.cli import main; main()", *args],
        check=False,
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", [["plan", "--help"], ["serve", "--features", "nowhere"], ["train", "--help"]])
def test_settings_error_is_short_and_shows_no_secret(command: list[str]):
    env = {
        "AUDIENCEFIT_ENVIRONMENT": "production",
        "AUDIENCEFIT_FOLLOWER_ID_SECRET": "short-secret",
        "AUDIENCEFIT_API_KEYS": API_KEY,
        "AUDIENCEFIT_ADMIN_API_KEYS": ADMIN_KEY,
    }
    result = _run_cli(env, *command)
    assert result.returncode == 2, result.stderr
    err = result.stderr
    assert "Traceback" not in err
    assert "AUDIENCEFIT_FOLLOWER_ID_SECRET" in err
    for secret in ("short-secret", API_KEY, ADMIN_KEY):
        assert secret not in err + result.stdout


def test_malformed_setting_names_the_variable():
    result = _run_cli({"AUDIENCEFIT_EMBED_BATCH_SIZE": "many", "AUDIENCEFIT_API_KEYS": API_KEY}, "plan", "--help")
    assert result.returncode == 2
    assert "AUDIENCEFIT_EMBED_BATCH_SIZE" in result.stderr and "Traceback" not in result.stderr
    assert API_KEY not in result.stderr


def _errors(**values: object) -> str:
    from audiencefit.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as info:
        load_settings(environment="production", **values)
    return str(info.value)


@pytest.mark.parametrize(
    "secret",
    [
        "audiencefit-development-only-secret",
        "  audiencefit-development-only-secret  ",
        "audiencefit-development-only-secret\n",
        "xxAUDIENCEFIT-DEVELOPMENT-ONLY-SECRETxx",
        " " * 40,
        "\t\n",
        "",
        "tiny9",
        "a b c d e f g h i j k",  # 21 characters, 11 of them not whitespace
        "aaaaaaaaaaaaaaaaaaaaaaaa",
        f" {STRONG}",
    ],
)
def test_production_refuses_weak_follower_secrets(secret: str):
    message = _errors(follower_id_secret=secret, api_keys=[API_KEY])
    assert "AUDIENCEFIT_FOLLOWER_ID_SECRET" in message
    if secret.strip():
        assert secret.strip() not in message


@pytest.mark.parametrize("keys", ["tiny9", f"{API_KEY}, abc", "aaaaaaaaaaaaaaaaaaaaaaa", "has space in it 12345"])
def test_production_refuses_weak_api_keys(keys: str):
    message = _errors(follower_id_secret=STRONG, api_keys=keys)
    assert "AUDIENCEFIT_API_KEYS" in message
    for key in keys.split(","):
        assert key.strip() not in message


def test_production_refuses_an_admin_key_that_is_also_a_v1_key():
    assert "AUDIENCEFIT_ADMIN_API_KEYS" in _errors(follower_id_secret=STRONG, api_keys=API_KEY, admin_api_keys=API_KEY)


def test_production_accepts_strong_values_and_keys_are_secret():
    from audiencefit.settings import load_settings

    uri = "https://alice:pa55word-Xy@mlflow.example"
    settings = load_settings(
        environment="production",
        follower_id_secret=STRONG,
        api_keys=f"{API_KEY}",
        admin_api_keys=ADMIN_KEY,
        mlflow_tracking_uri=uri,
    )
    assert settings.tracking_uri == uri or os.environ.get("MLFLOW_TRACKING_URI")
    assert settings.api_key_values() == [API_KEY]
    assert settings.admin_key_values() == [ADMIN_KEY]
    shown = repr(settings) + str(settings) + str(settings.model_dump()) + settings.model_dump_json()
    for secret in (STRONG, API_KEY, ADMIN_KEY, "pa55word-Xy"):
        assert secret not in shown


def test_development_keeps_its_defaults():
    from audiencefit.settings import load_settings

    settings = load_settings(environment="development", api_keys="k")
    assert settings.api_key_values() == ["k"]


def test_an_operating_system_error_is_one_line_naming_the_path(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = _run_cli({}, "demo-data", "--creators", "5", "--out", str(blocker / "world"))
    assert result.returncode == 2  # a path given by the user that cannot be a directory: bad input
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and str(blocker) in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "not a url at all",
        "postgresql+nodriver://user:Pw-Secret-4242@db.example/recs",  # no such driver
    ],
)
def test_a_bad_recommendation_log_url_names_the_setting_not_the_url(url: str):
    from audiencefit.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as info:
        load_settings(recommendation_log_url=url)
    message = str(info.value)
    assert "AUDIENCEFIT_RECOMMENDATION_LOG_URL" in message and "not a usable SQLAlchemy database URL" in message
    assert "Pw-Secret-4242" not in message and "db.example" not in message
    result = _run_cli({"AUDIENCEFIT_RECOMMENDATION_LOG_URL": url}, "plan", "--help")
    assert result.returncode == 2 and "AUDIENCEFIT_RECOMMENDATION_LOG_URL" in result.stderr
    assert "Pw-Secret-4242" not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_the_recommendation_log_defaults_to_sqlite_under_the_data_dir(tmp_path: Path):
    from audiencefit.logs import settings_secrets
    from audiencefit.settings import load_settings

    settings = load_settings(data_dir=tmp_path)
    assert settings.recommendation_log_target == f"sqlite:///{tmp_path.resolve() / 'recommendations.db'}"
    assert settings.recommendation_log_enabled and settings.recommendation_log_queue == 10_000
    given = load_settings(recommendation_log_url="sqlite:////var/lib/recs.db ")
    assert given.recommendation_log_target == "sqlite:////var/lib/recs.db"
    assert "recs.db" not in repr(given)  # a secret: it may carry a password
    with_password = load_settings(recommendation_log_url="sqlite://user:Pw-Secret-4242@/x.db?password=Other-Pw-99")
    assert {"Pw-Secret-4242", "Other-Pw-99"} <= set(settings_secrets(with_password))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "data/cache/tables"), ("", None), (".", "."), ("/srv/tables", "/srv/tables")],
    ids=["unset", "set-but-empty", "the-current-directory", "a-path"],
)
def test_table_cache_set_but_empty_switches_it_off_and_dot_is_a_directory(
    value: str | None, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audiencefit.settings import Settings

    if value is None:
        monkeypatch.delenv("AUDIENCEFIT_TABLE_CACHE", raising=False)
    else:
        monkeypatch.setenv("AUDIENCEFIT_TABLE_CACHE", value)
    got = Settings(data_dir=Path("data")).table_cache_dir
    assert got == (Path(expected) if expected is not None else None)
