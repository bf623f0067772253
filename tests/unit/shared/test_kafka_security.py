"""Kafka transport security and topic settings: SASL/TLS reach every client the project builds (kafka-python
producer and admin, faust and its aiokafka clients, the replay tool's aiokafka consumer), topics are created
with the configured replication factor and retention, and MongoDB TLS reaches the driver."""

from __future__ import annotations

import inspect
import ssl
from pathlib import Path
from typing import Any

import certifi
import faust
import pytest
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from pydantic import SecretStr, ValidationError

import feedback_shared.kafka as kafka_module
from feedback_shared.config import KafkaSettings, MongoSettings, mongo_url_password
from feedback_shared.kafka import (
    client_security_options,
    create_faust_app,
    ensure_topics,
    faust_credentials,
    topic_configs,
)
from feedback_shared.mongo import client_tls_options
from feedback_shared.topics import ALL_TOPICS, FEEDBACK_RECEIVED

CA = Path(certifi.where())
STRONG = "Kq7vX2mPz9LwT4rN8bYc3HjD6fGs5QaE"


def sasl_ssl(**changes: Any) -> KafkaSettings:
    values: dict[str, Any] = {"bootstrap_servers": "kafka:9093", "security_protocol": "SASL_SSL",
                              "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "sentiment",
                              "sasl_password": SecretStr(STRONG), "ssl_cafile": CA}
    return KafkaSettings(**(values | changes))


# ---- settings ----------------------------------------------------------------------------------------
def test_defaults_are_plaintext_one_replica_and_a_week() -> None:
    settings = KafkaSettings()
    assert settings.security_protocol == "PLAINTEXT"
    assert settings.replication_factor == 1
    assert settings.retention_ms == 7 * 24 * 3600 * 1000
    assert settings.dlq_retention_ms == 30 * 24 * 3600 * 1000


@pytest.mark.parametrize("missing", ["sasl_mechanism", "sasl_username", "sasl_password"])
@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_sasl_without_its_credentials_is_refused_naming_the_variable(protocol: str, missing: str) -> None:
    with pytest.raises(ValidationError) as exc:
        sasl_ssl(security_protocol=protocol, ssl_cafile=None, **{missing: None})
    assert f"KAFKA__{missing.upper()}" in str(exc.value)


def test_a_client_certificate_needs_its_key_and_tls_files_need_tls() -> None:
    with pytest.raises(ValidationError, match="KAFKA__SSL_KEYFILE"):
        sasl_ssl(ssl_certfile=CA)
    with pytest.raises(ValidationError, match="does not use TLS"):
        KafkaSettings(ssl_cafile=CA)


def test_unknown_protocols_and_mechanisms_are_refused() -> None:
    with pytest.raises(ValidationError):
        KafkaSettings(security_protocol="TLS")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        sasl_ssl(sasl_mechanism="GSSAPI")


# ---- kafka-python and aiokafka options ----------------------------------------------------------------
def test_plaintext_options_carry_no_credentials() -> None:
    assert client_security_options(KafkaSettings()) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(KafkaSettings()) is None


def test_sasl_ssl_options_carry_the_credentials_and_a_verifying_tls_context() -> None:
    options = client_security_options(sasl_ssl())
    context = options.pop("ssl_context")
    assert options == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "sentiment", "sasl_plain_password": STRONG}
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # the CA file was loaded


def test_sasl_plaintext_has_no_tls_context_and_ssl_has_no_sasl() -> None:
    options = client_security_options(sasl_ssl(security_protocol="SASL_PLAINTEXT", ssl_cafile=None))
    assert options["security_protocol"] == "SASL_PLAINTEXT" and "ssl_context" not in options
    options = client_security_options(KafkaSettings(security_protocol="SSL", ssl_cafile=CA))
    assert set(options) == {"security_protocol", "ssl_context"}


def test_a_missing_client_certificate_fails_when_the_client_is_built(tmp_path: Path) -> None:
    settings = sasl_ssl(ssl_certfile=tmp_path / "client.crt", ssl_keyfile=tmp_path / "client.key")
    with pytest.raises(OSError):
        client_security_options(settings)


def test_every_option_is_one_the_clients_take() -> None:
    keys = set(client_security_options(sasl_ssl()))
    assert keys <= set(KafkaProducer.DEFAULT_CONFIG)
    assert keys <= set(KafkaAdminClient.DEFAULT_CONFIG)
    assert keys <= set(inspect.signature(AIOKafkaConsumer.__init__).parameters)


def test_the_producer_is_built_with_the_security_options(monkeypatch: pytest.MonkeyPatch) -> None:
    built: dict[str, Any] = {}
    monkeypatch.setattr(kafka_module, "KafkaProducer", lambda **kw: built.update(kw))
    kafka_module.create_producer(sasl_ssl())
    assert built["security_protocol"] == "SASL_SSL" and built["sasl_plain_password"] == STRONG
    assert isinstance(built["ssl_context"], ssl.SSLContext)


# ---- faust ----------------------------------------------------------------------------------------------
def test_faust_gets_sasl_over_tls() -> None:
    app = create_faust_app("security-test", sasl_ssl())
    credentials = app.conf.broker_credentials
    assert isinstance(credentials, faust.SASLCredentials)
    auth = dict(credentials_to_aiokafka_auth(credentials))
    assert isinstance(auth.pop("ssl_context"), ssl.SSLContext)
    assert auth == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                    "sasl_plain_username": "sentiment", "sasl_plain_password": STRONG}


def test_faust_gets_tls_alone_or_nothing() -> None:
    credentials = faust_credentials(KafkaSettings(security_protocol="SSL", ssl_cafile=CA))
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SSL"
    assert create_faust_app("security-test", KafkaSettings()).conf.broker_credentials is None


# ---- topics ---------------------------------------------------------------------------------------------
class FakeAdmin:
    """Records the topics ``ensure_topics`` asks for; ``existing`` are already there."""

    instances: list[FakeAdmin] = []

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.created: list[Any] = []
        self.closed = False
        FakeAdmin.instances.append(self)

    def list_topics(self) -> list[str]:
        return [FEEDBACK_RECEIVED.name]

    def create_topics(self, topics: list[Any]) -> None:
        self.created += topics

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    FakeAdmin.instances = []
    monkeypatch.setattr(kafka_module, "KafkaAdminClient", FakeAdmin)
    return FakeAdmin


def test_topics_get_the_replication_factor_retention_and_min_isr(fake_admin: type[FakeAdmin]) -> None:
    settings = sasl_ssl(replication_factor=3, retention_ms=3 * 24 * 3600 * 1000)
    created = ensure_topics(settings)
    [admin] = fake_admin.instances
    assert admin.options["security_protocol"] == "SASL_SSL" and admin.options["sasl_plain_username"] == "sentiment"
    assert admin.closed
    assert FEEDBACK_RECEIVED.name not in created  # it exists: left alone
    assert len(created) == 2 * len(ALL_TOPICS) - 1
    by_name = {t.name: t for t in admin.created}
    for spec in ALL_TOPICS:
        dlq = by_name[spec.dlq_name]
        assert (dlq.replication_factor, dlq.num_partitions) == (3, 1)
        assert dlq.topic_configs == {"retention.ms": str(30 * 24 * 3600 * 1000), "min.insync.replicas": "2"}
        if spec is not FEEDBACK_RECEIVED:
            topic = by_name[spec.name]
            assert (topic.replication_factor, topic.num_partitions) == (3, spec.partitions)
            assert topic.topic_configs == {"retention.ms": str(3 * 24 * 3600 * 1000), "min.insync.replicas": "2"}


def test_a_single_broker_gets_one_replica_and_no_min_isr(fake_admin: type[FakeAdmin]) -> None:
    ensure_topics(KafkaSettings())
    [admin] = fake_admin.instances
    assert {t.replication_factor for t in admin.created} == {1}
    assert all("min.insync.replicas" not in t.topic_configs for t in admin.created)
    assert admin.options["security_protocol"] == "PLAINTEXT"
    assert topic_configs(KafkaSettings()) == {"retention.ms": str(7 * 24 * 3600 * 1000)}


# ---- MongoDB ----------------------------------------------------------------------------------------------
def test_mongo_tls_options() -> None:
    assert client_tls_options(MongoSettings()) == {}
    assert client_tls_options(MongoSettings(tls=True)) == {"tls": True}
    assert client_tls_options(MongoSettings(tls=True, tls_ca_file=CA)) == {"tls": True, "tlsCAFile": str(CA)}


def test_mongo_connect_passes_tls_to_the_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    import feedback_shared.mongo as mongo_module

    built: dict[str, Any] = {}
    monkeypatch.setattr(mongo_module, "MongoClient", lambda url, **kw: built.update(kw, url=url))
    mongo_module.connect(MongoSettings(url=SecretStr("mongodb://u:p@db/x"), tls=True, tls_ca_file=CA), ping=False)
    assert built["tls"] is True and built["tlsCAFile"] == str(CA) and built["url"] == "mongodb://u:p@db/x"


@pytest.mark.parametrize(("url", "password"), [
    ("mongodb://ingest:change-me@mongodb:27017/ingest?authSource=admin", "change-me"),
    ("mongodb://u:p%40ss@a,b/db", "p@ss"),
    ("mongodb://mongodb:27017/?replicaSet=rs0", None),
    ("mongodb://user@host/db", None),
    ("mongodb://host/db?x=a@b", None),
])
def test_the_password_in_a_mongo_url(url: str, password: str | None) -> None:
    assert mongo_url_password(url) == password


# ---- production refuses placeholder credentials ------------------------------------------------------------
def _ingest(**changes: Any) -> Any:
    from ingest.config import Settings

    return Settings(environment="production", pseudonym_key=STRONG, **changes)


def test_production_refuses_a_placeholder_sasl_password_naming_the_variable() -> None:
    with pytest.raises(ValidationError, match="INGEST_KAFKA__SASL_PASSWORD"):
        _ingest(kafka=sasl_ssl(sasl_password=SecretStr("change-me")))
    with pytest.raises(ValidationError, match="INGEST_KAFKA__SASL_PASSWORD.*too short"):
        _ingest(kafka=sasl_ssl(sasl_password=SecretStr("short")))
    assert _ingest(kafka=sasl_ssl()).kafka.sasl_username == "sentiment"


def test_production_refuses_a_placeholder_mongo_password_naming_the_variable() -> None:
    url = "mongodb://ingest:change-me@mongodb:27017/ingest?authSource=admin"
    with pytest.raises(ValidationError, match="INGEST_MONGO__URL"):
        _ingest(mongo=MongoSettings(url=SecretStr(url)))
    assert _ingest(mongo=MongoSettings(url=SecretStr(url.replace("change-me", STRONG))))


def test_development_accepts_placeholders() -> None:
    from ingest.config import Settings

    url = SecretStr("mongodb://ingest:change-me@mongodb:27017/ingest")
    settings = Settings(environment="development", kafka=sasl_ssl(sasl_password=SecretStr("change-me")),
                        mongo=MongoSettings(url=url))
    assert settings.kafka.sasl_password is not None


def test_the_topic_job_reads_a_services_kafka_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from feedback_shared.config import kafka_settings_from_env

    monkeypatch.setenv("INGEST_KAFKA__BOOTSTRAP_SERVERS", "kafka:9093")
    monkeypatch.setenv("INGEST_KAFKA__REPLICATION_FACTOR", "3")
    monkeypatch.setenv("INGEST_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("INGEST_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("INGEST_KAFKA__SASL_USERNAME", "ingest")
    monkeypatch.setenv("INGEST_KAFKA__SASL_PASSWORD", STRONG)
    monkeypatch.setenv("ALERTS_KAFKA__REPLICATION_FACTOR", "5")  # another service's: not read
    settings = kafka_settings_from_env("INGEST_")
    assert (settings.bootstrap_servers, settings.replication_factor, settings.sasl_username) == ("kafka:9093", 3, "ingest")
    monkeypatch.delenv("INGEST_KAFKA__SASL_PASSWORD")
    with pytest.raises(ValidationError, match="KAFKA__SASL_PASSWORD"):
        kafka_settings_from_env("INGEST_")
