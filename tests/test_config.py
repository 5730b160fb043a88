"""app/config.py: the contract's defaults, parsing of overrides, and where a
relative SQLite path points."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app import config, create_app
from app.config import ConfigError, from_env

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent

# The contract's configuration table, as Flask config values.
CONTRACT_DEFAULTS = {
    "DATABASE_URL": f"sqlite:///{REPOSITORY_ROOT / 'instance' / 'app.db'}",
    "BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
    "MAIL_SERVER": "127.0.0.1",
    "MAIL_PORT": 8025,
    "MAIL_USE_TLS": False,
    "MAIL_USE_SSL": False,
    "MAIL_USERNAME": None,
    "MAIL_PASSWORD": None,
    "MAIL_TLS_CA_FILE": None,
    "MAIL_TLS_VERIFY": True,
    "EXPORT_DIR": str(REPOSITORY_ROOT / "instance" / "exports"),
    "EXPORT_ATTACH_MAX_BYTES": 5242880,
    "EXPORT_LINK_TTL_S": 604800,
    "EMAIL_MAX_RETRIES": 5,
    "EXPORT_MAX_RETRIES": 3,
    "RETRY_MIN_BACKOFF_MS": 15000,
    "RETRY_MAX_BACKOFF_MS": 3600000,
    "RESEND_INTERVAL_S": 600,
    "EMAIL_RESEND_MAX_ROUNDS": 3,
    "CLEANUP_INTERVAL_S": 3600,
    "JOB_RETENTION_DAYS": 30,
    "FAILED_JOB_RETENTION_DAYS": 90,
    "RELAY_INTERVAL_S": 10,
    "API_TOKEN_TTL_DAYS": 90,
    "METRICS_TOKEN": None,
}
INTEGER_SETTINGS = [name for name, value in CONTRACT_DEFAULTS.items() if type(value) is int]


@pytest.mark.parametrize("name", list(CONTRACT_DEFAULTS))
def test_default_matches_the_contract(name):
    assert from_env({})[name] == CONTRACT_DEFAULTS[name]


def test_integer_defaults_are_integers():
    settings = from_env({})

    for name in INTEGER_SETTINGS:
        assert type(settings[name]) is int, name


def test_secret_key_is_left_for_create_app_when_unset():
    # reading settings must not generate (and write) a key
    assert from_env({})["SECRET_KEY"] is None


def test_empty_variables_count_as_unset():
    settings = from_env({name: "" for name in CONTRACT_DEFAULTS})

    for name, default in CONTRACT_DEFAULTS.items():
        assert settings[name] == default, name


@pytest.mark.parametrize("name", INTEGER_SETTINGS)
def test_integer_setting_is_parsed_from_the_environment(name):
    assert from_env({name: "4000000", "RETRY_MAX_BACKOFF_MS": "4000000"})[name] == 4000000


def test_string_settings_are_taken_as_given():
    env = {
        "BROKER_URL": "amqp://u:p@rabbit:5672/jobs",
        "MAIL_SERVER": "smtp.example.com",
        "MAIL_USERNAME": "mailer",
        "MAIL_PASSWORD": "s3cret",
        "MAIL_DEFAULT_SENDER": "jobs@example.com",
        "MAIL_TLS_CA_FILE": "/etc/ssl/private-ca.pem",
        "EXPORT_DIR": "/var/lib/exports",
        "SECRET_KEY": "from-the-environment",
    }

    settings = from_env(env)

    for name, value in env.items():
        assert settings[name] == value, name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("Yes", True),
        ("ON", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("off", False),
    ],
)
def test_boolean_settings_are_parsed(raw, expected):
    settings = from_env({"MAIL_USE_TLS": raw, "MAIL_USE_SSL": raw, "MAIL_TLS_VERIFY": raw})

    assert settings["MAIL_USE_TLS"] is expected
    assert settings["MAIL_USE_SSL"] is expected
    assert settings["MAIL_TLS_VERIFY"] is expected


@pytest.mark.parametrize("raw", ["abc", "1.5", "5s", "1e3", " ", "0x10"])
@pytest.mark.parametrize("name", ["MAIL_PORT", "EMAIL_MAX_RETRIES", "RELAY_INTERVAL_S"])
def test_integer_that_does_not_parse_raises_config_error_naming_the_variable(name, raw):
    with pytest.raises(ConfigError, match=name):
        from_env({name: raw})


def test_negative_integer_raises_config_error():
    with pytest.raises(ConfigError, match="EXPORT_MAX_RETRIES"):
        from_env({"EXPORT_MAX_RETRIES": "-1"})


def test_boolean_that_does_not_parse_raises_config_error():
    with pytest.raises(ConfigError, match="MAIL_USE_TLS"):
        from_env({"MAIL_USE_TLS": "maybe"})


def test_minimum_backoff_above_maximum_raises_config_error():
    with pytest.raises(ConfigError, match="RETRY_MIN_BACKOFF_MS"):
        from_env({"RETRY_MIN_BACKOFF_MS": "2000", "RETRY_MAX_BACKOFF_MS": "1000"})


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_relative_sqlite_url_resolves_against_the_repository_root(tmp_path, monkeypatch):
    # Given a process started somewhere else
    monkeypatch.chdir(tmp_path)

    # When the URL names a relative path
    url = from_env({"DATABASE_URL": "sqlite:///data/other.db"})["DATABASE_URL"]

    # Then it points into the repository
    assert url == f"sqlite:///{REPOSITORY_ROOT / 'data' / 'other.db'}"
    assert config.ROOT == REPOSITORY_ROOT


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/app/app.db",
        "sqlite:///:memory:",
        "sqlite://",
        "postgresql+psycopg://app:pw@db.example.com:5432/app",
    ],
    ids=["absolute-sqlite", "memory", "bare-sqlite", "postgresql"],
)
def test_other_database_urls_are_kept_as_given(url):
    assert from_env({"DATABASE_URL": url})["DATABASE_URL"] == url


def test_from_env_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("JOB_RETENTION_DAYS", "7")

    assert from_env()["JOB_RETENTION_DAYS"] == 7


@pytest.mark.parametrize(
    ("name", "default", "other"),
    [("BROKER_QUEUE_TYPE", "classic", "quorum"), ("LOG_FORMAT", "text", "json")],
)
def test_choice_settings_default_and_accept_their_values(name, default, other):
    assert from_env({})[name] == default
    assert from_env({name: other.upper()})[name] == other


@pytest.mark.parametrize("name", ["BROKER_QUEUE_TYPE", "LOG_FORMAT"])
def test_choice_settings_refuse_unknown_values(name):
    with pytest.raises(ConfigError, match=name):
        from_env({name: "bogus"})


# --- the secret key and instance/ -------------------------------------------


@pytest.fixture()
def instance(tmp_path, monkeypatch):
    directory = tmp_path / "instance"
    monkeypatch.setattr(config, "INSTANCE", directory)
    return directory


def test_generated_secret_key_is_written_whole_with_mode_0600_and_kept(instance):
    key = config.secret_key()

    path = instance / "secret_key"
    assert path.read_text() == key and len(key) >= config.MIN_SECRET_KEY_LENGTH
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    assert [p.name for p in instance.iterdir()] == ["secret_key"]  # no temporary file left
    assert config.secret_key() == key


def test_a_second_writer_never_replaces_the_first_key(instance):
    instance.mkdir()
    assert config.write_private(instance / "secret_key", "a" * 64)
    assert not config.write_private(instance / "secret_key", "b" * 64)
    assert config.secret_key() == "a" * 64


@pytest.mark.parametrize("content", ["", "   \n", "short-key"])
def test_an_empty_or_short_key_file_is_refused_at_start(instance, tmp_path, content):
    instance.mkdir()
    (instance / "secret_key").write_text(content)
    with pytest.raises(config.ConfigError, match="delete"):
        create_app({"SECRET_KEY": None, "DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"})


def test_a_short_secret_key_from_the_environment_is_refused_at_start(tmp_path):
    with pytest.raises(config.ConfigError, match="SECRET_KEY"):
        create_app({"SECRET_KEY": "too-short", "DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"})


def test_the_sqlite_database_is_created_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "db" / "app.db"
    create_app({"DATABASE_URL": f"sqlite:///{path}"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
