"""``feedbackctl``: the operator CLI.

    feedbackctl up        start the embedded stack (broker, database, four services), feed the demo
    feedbackctl demo      send the demo feed to a running stack
    feedbackctl import F  import a JSONL or CSV file of feedback, with a progress bar
    feedbackctl replay    re-score a time range of feedback with the current model
    feedbackctl health    readiness of every service
    feedbackctl topics    list the broker's topics
    feedbackctl schemas   write the JSON Schema of every topic (for producers outside the project)
    feedbackctl tokens    create, list and revoke principals' tokens (in the auth database)
    feedbackctl pages     list the pages given up (dead), and requeue them
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx

from feedback_tools.devstack import SERVICES, EmbeddedStack, StackConfig, StackError, die_with_parent
from feedback_tools.receiver import StandInReceiver


def _config_from_env() -> StackConfig:
    env = os.environ
    return StackConfig(
        host=env.get("FEEDBACK_HOST", "127.0.0.1"),
        broker_port=int(env.get("FEEDBACK_BROKER_PORT", "9092")),
        mongo_port=int(env.get("FEEDBACK_MONGO_PORT", "27017")),
        data_dir=Path(env.get("FEEDBACK_DATA_DIR", ".data")),
        api_key=env.get("FEEDBACK_API_KEY", "dev-key"),
        service_ports={name: int(env.get(f"FEEDBACK_{name.upper()}_PORT", str(port))) for name, _, port in SERVICES},
    )


def print_notification(request: dict[str, Any]) -> None:
    """The demo's stand-in for Slack prints every notification the alerts service delivers."""
    body = request["body"] if isinstance(request["body"], dict) else {}
    title, message = body.get("title", "(unreadable notification)"), str(body.get("message", ""))
    first_line = message.splitlines()[0] if message else ""
    print(f"\n>>> CSM notification: {title}\n    {first_line[:200]}", flush=True)


def demo_requests(lines: list[str], now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """(endpoint, body) for each line of the demo feed. A line's ``days_ago`` back-dates its item's
    ``occurred_at`` from ``now``, so the feed always spans the last two weeks, whenever it is sent."""
    requests = []
    for line in lines:
        item = json.loads(line)
        body = dict(item["body"])
        if "days_ago" in item:
            occurred = now.astimezone(UTC) - timedelta(days=float(item["days_ago"]))
            body["occurred_at"] = occurred.isoformat(timespec="seconds").replace("+00:00", "Z")
        requests.append((str(item["endpoint"]), body))
    return requests


def send_demo(config: StackConfig, notify_url: str | None = None) -> tuple[int, int]:
    """Register a demo CSM and accounts, then post every demo item. Returns (accepted, failed)."""
    headers = {"Authorization": f"Bearer {config.api_key}"}
    alerts = config.service_url("alerts")
    ingest = config.service_url("ingest")
    with httpx.Client(timeout=15) as client:
        if notify_url:
            client.put(f"{alerts}/v1/csms/csm-demo", headers=headers,
                       json={"name": "Demo CSM", "notify": [notify_url]}).raise_for_status()
            client.put(f"{alerts}/v1/csms/{'fallback-queue'}", headers=headers,
                       json={"name": "Fallback queue", "notify": [notify_url]}).raise_for_status()
        for customer in ("cust-anna", "cust-leyla", "cust-dilshod", "cust-claire"):
            client.put(f"{alerts}/v1/accounts/{customer}", headers=headers,
                       json={"csm_id": "csm-demo", "tier": "silver"}).raise_for_status()
        accepted = failed = 0
        lines = files("feedback_tools").joinpath("demo_feed.jsonl").read_text("utf-8").splitlines()
        for endpoint, body in demo_requests(lines, datetime.now(UTC)):
            resp = client.post(f"{ingest}{endpoint}", json=body, headers=headers)
            if resp.status_code in (200, 202):
                accepted += 1
            else:
                failed += 1
                print(f"demo item refused: {resp.status_code} {resp.text[:200]}", file=sys.stderr)
    return accepted, failed


def cmd_up(args: argparse.Namespace) -> int:
    config = _config_from_env()
    stack = EmbeddedStack(config)
    demo = os.environ.get("DEMO", "1") != "0" and not args.no_demo
    names = [n for n, _, _ in SERVICES]
    notify_port = int(os.environ.get("FEEDBACK_DEMO_NOTIFY_PORT", "8009"))
    stopping = False

    def _stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # `make run` is what people start and stop: if it (our parent) is killed, stop the stack too.
    die_with_parent()
    try:
        stack.check_ports(names)
        print(f"Starting the broker on {config.bootstrap} and the database on {config.host}:{config.mongo_port} …",
              flush=True)
        stack.start_infrastructure()
        admin_token = create_dev_admin_token(config)
        print("Starting ingest, sentiment, alerts and loyalty (the model loads in a second or two) …", flush=True)
        stack.start_services(names)
        if demo:
            StandInReceiver(config.host, notify_port, keep=False, on_request=print_notification)
            accepted, failed = send_demo(config, f"json://{config.host}:{notify_port}/")
            print(f"Demo feed sent: {accepted} items accepted, {failed} refused.", flush=True)
        print(_where_to_look(config, stack, admin_token), flush=True)
        while True:
            for name, child in list(stack.children.items()):
                if not child.alive():
                    print(f"{name} exited with code {child.popen.returncode}; see {child.log_path}. Stopping.",
                          file=sys.stderr, flush=True)
                    return 1
            time.sleep(1)
    except StackError as exc:
        print(f"feedbackctl: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nStopping every process of the stack …", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        print("Stopped.", flush=True)


def create_dev_admin_token(config: StackConfig) -> str:
    """An admin token in the dev stack's auth database, printed with where to look."""
    from pydantic import SecretStr

    from feedback_shared.auth import MongoTokenStore, TokenRequest, create_token
    from feedback_shared.config import MongoSettings
    from feedback_shared.events import utcnow
    from feedback_shared.mongo import connect

    client = connect(MongoSettings(url=SecretStr(config.mongo_url)))
    try:
        store = MongoTokenStore(client["auth"])
        store.ensure_indexes()
        token, _ = create_token(store, TokenRequest(role="admin", name="make run"), utcnow())
    finally:
        client.close()
    return token


def _where_to_look(config: StackConfig, stack: EmbeddedStack, admin_token: str) -> str:
    u = config.service_url
    return f"""
The pipeline is running (Ctrl-C stops everything). Every route needs a token:
  admin token      {admin_token}
  development key  {config.api_key}  (also admin; refused outside development)
  more tokens      .venv/bin/feedbackctl tokens create --role csm --csm-id csm-demo

  Ingest API          {u('ingest')}/openapi.json  (OpenAPI; /docs too: both need the token, as every route)
  Scoring API         {u('sentiment')}/openapi.json
  CSM inbox           {u('alerts')}/  (sign in with a token)
  Alerts API          {u('alerts')}/v1/alerts
  Loyalty points      {u('loyalty')}/v1/customers/cust-boris/points
  Metrics             {u('ingest')}/metrics  (and :{config.service_ports['sentiment']}, :{config.service_ports['alerts']}, :{config.service_ports['loyalty']})
  Logs                {stack.log_dir}/

Try:
  curl -s -X POST {u('ingest')}/v1/reviews -H 'Authorization: Bearer {config.api_key}' \\
       -H 'Content-Type: application/json' \\
       -d '{{"source":"google","external_id":"try-1","customer_id":"c-42","rating":1,"text":"Terrible, it broke on day one and nobody answers."}}'
  curl -s {u('alerts')}/v1/alerts -H 'Authorization: Bearer {config.api_key}'
"""


def cmd_demo(_: argparse.Namespace) -> int:
    accepted, failed = send_demo(_config_from_env())
    print(f"{accepted} accepted, {failed} refused")
    return 0 if failed == 0 else 1


def cmd_import(args: argparse.Namespace) -> int:
    from feedback_tools.importer import import_file

    config = _config_from_env()
    path = Path(args.file)
    if not path.is_file():
        print(f"feedbackctl: no such file: {path}", file=sys.stderr)
        return 2
    summary = import_file(path, ingest_url=config.service_url("ingest"), api_key=config.api_key,
                          source=args.source, kind=args.kind, progress=not args.json)
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        print(f"{summary.rows} rows: {summary.accepted} accepted, {summary.duplicates} duplicate, "
              f"{summary.rejected} rejected, {summary.unavailable} not accepted (retry later)")
        if summary.rejected_file:
            print(f"Rejected rows, with the reason: {summary.rejected_file}")
    for error in summary.errors:
        print(f"feedbackctl: {error}", file=sys.stderr)
    return 0 if summary.unavailable == 0 else 1


def cmd_replay(args: argparse.Namespace) -> int:
    from datetime import datetime

    from feedback_shared.config import KafkaSettings
    from feedback_tools.replay import replay

    try:
        since = datetime.fromisoformat(args.since)
        until = datetime.fromisoformat(args.until) if args.until else None
    except ValueError as exc:
        print(f"feedbackctl: --since/--until must be ISO 8601 with a time zone: {exc}", file=sys.stderr)
        return 2
    if since.tzinfo is None or (until is not None and until.tzinfo is None):
        print("feedbackctl: give --since/--until with a time zone, e.g. 2026-11-25T08:00:00+00:00", file=sys.stderr)
        return 2
    summary = replay(KafkaSettings(bootstrap_servers=_config_from_env().bootstrap), since, until,
                     progress=not args.json)
    result = {"read": summary.read, "scored": summary.scored, "undecodable": summary.undecodable,
              "model_version": summary.model_version}
    print(json.dumps(result) if args.json else
          f"{summary.read} read, {summary.scored} re-scored with {summary.model_version}, "
          f"{summary.undecodable} undecodable (already dead-lettered)")
    return 0


def cmd_health(_args: argparse.Namespace) -> int:
    config = _config_from_env()
    ok = True
    for name, _, _ in SERVICES:
        try:
            resp = httpx.get(f"{config.service_url(name)}/readyz", timeout=3)
            state = resp.json().get("status", resp.status_code)
            ok &= resp.status_code == 200
        except httpx.HTTPError as exc:
            state, ok = f"unreachable ({type(exc).__name__})", False
        print(f"{name:10s} {state}")
    return 0 if ok else 1


def cmd_topics(_: argparse.Namespace) -> int:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=_config_from_env().bootstrap)
    try:
        for name in sorted(admin.list_topics()):
            print(name)
    finally:
        admin.close()
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    """Write (or, with --check, compare) the JSON Schema of every topic, generated from the event models."""
    from feedback_shared.topics import SCHEMA_DIR, schema_documents, write_schemas

    if args.check:
        stale = [name for name, text in schema_documents().items()
                 if not (SCHEMA_DIR / name).exists() or (SCHEMA_DIR / name).read_text("utf-8") != text]
        for name in stale:
            print(f"out of date: {SCHEMA_DIR / name}")
        return 1 if stale else 0
    for path in write_schemas(Path(args.dir) if args.dir else SCHEMA_DIR):
        print(path)
    return 0


def _token_store(args: argparse.Namespace) -> Any:
    from pydantic import SecretStr

    from feedback_shared.auth import MongoTokenStore
    from feedback_shared.config import MongoSettings
    from feedback_shared.mongo import connect

    url = args.mongo_url or os.environ.get("FEEDBACK_MONGO_URL") or _config_from_env().mongo_url
    client = connect(MongoSettings(url=SecretStr(url), server_selection_timeout_ms=5000))
    store = MongoTokenStore(client[args.auth_database])
    store.ensure_indexes()
    return store


def cmd_tokens(args: argparse.Namespace) -> int:
    """Tokens are written straight to the auth database: an operator with database access needs no
    token to make the first one."""
    from pydantic import ValidationError

    from feedback_shared.auth import TokenRequest, create_token
    from feedback_shared.events import utcnow

    if args.action == "create":
        try:
            request = TokenRequest(role=args.role, name=args.name or "", csm_id=args.csm_id,
                                   sources=tuple(args.source or ()), commerce=args.commerce).checked()
        except (ValidationError, ValueError) as exc:
            print(f"feedbackctl: {exc}", file=sys.stderr)
            return 2
        token, record = create_token(_token_store(args), request, utcnow())
        scope = ", ".join(f"{k}={v}" for k, v in (("csm_id", record.csm_id), ("sources", ",".join(record.sources)),
                                                   ("commerce", record.commerce)) if v)
        print(f"Created token {record.token_id} (role {record.role}{'; ' + scope if scope else ''}). "
              "It is shown once; store it now:")
        print(token)
        return 0
    store = _token_store(args)
    if args.action == "revoke":
        if not args.token_id:
            print("feedbackctl: tokens revoke needs the token id (see tokens list)", file=sys.stderr)
            return 2
        token_id = args.token_id.split("_")[1] if args.token_id.startswith("fbt_") else args.token_id
        if store.revoke(token_id, utcnow()):
            print(f"Revoked {token_id} (services stop accepting it within their cache time, 10 s by default).")
            return 0
        print(f"feedbackctl: no active token {token_id!r}", file=sys.stderr)
        return 1
    for record in store.all():
        state = f"revoked {record.revoked_at:%Y-%m-%d %H:%M}" if record.revoked_at else "active"
        print(f"{record.token_id}  {record.role:11s} {record.csm_id or ''} {','.join(record.sources)}"
              f"{' commerce' if record.commerce else ''}  {record.name}  [{state}]")
    return 0


def cmd_pages(args: argparse.Namespace) -> int:
    """Through the alerts API, with an admin token (FEEDBACK_TOKEN, else the dev stack's key)."""
    config = _config_from_env()
    token = args.token or os.environ.get("FEEDBACK_TOKEN") or config.api_key
    alerts = (args.alerts_url or config.service_url("alerts")).rstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        if args.action == "list":
            response = httpx.get(f"{alerts}/v1/pages", headers=headers, params={"limit": args.limit}, timeout=15)
            response.raise_for_status()
            pages = response.json()
            for page in pages:
                print(f"{page['delivery_id']}  {page['kind']:8s} alert {page['alert_id']}  "
                      f"attempts {page.get('attempts', 0)}  {page.get('last_error', '')}")
            print(f"{len(pages)} dead page(s)")
            return 0
        body = {"ids": args.ids} if args.ids else {"ids": None}
        response = httpx.post(f"{alerts}/v1/pages/requeue", headers=headers, json=body, timeout=15)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        detail = exc.response.text[:300] if isinstance(exc, httpx.HTTPStatusError) else str(exc)
        print(f"feedbackctl: {detail}", file=sys.stderr)
        return 1
    print(f"{response.json()['requeued']} page(s) requeued")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="feedbackctl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the embedded stack and the demo feed")
    up.add_argument("--no-demo", action="store_true", help="do not send the demo feed (same as DEMO=0)")
    up.set_defaults(func=cmd_up)
    sub.add_parser("demo", help="send the demo feed to a running stack").set_defaults(func=cmd_demo)
    imp = sub.add_parser("import", help="import a JSONL or CSV file of feedback through the batch API")
    imp.add_argument("file", help="a .jsonl or .csv file")
    imp.add_argument("--source", help="source for rows that name none (e.g. trustpilot)")
    imp.add_argument("--kind", default="review", choices=["review", "mention", "complaint", "survey", "suggestion"],
                     help="kind for rows that name none")
    imp.add_argument("--json", action="store_true", help="print the summary as JSON, no progress bar")
    imp.set_defaults(func=cmd_import)
    rep = sub.add_parser("replay", help="re-score a time range of feedback.received.v1 with the current model")
    rep.add_argument("--since", required=True, help="ISO 8601 with a time zone, e.g. 2026-11-25T08:00:00+00:00")
    rep.add_argument("--until", help="ISO 8601 with a time zone (default: now)")
    rep.add_argument("--json", action="store_true", help="print the summary as JSON, no progress bar")
    rep.set_defaults(func=cmd_replay)
    sub.add_parser("health", help="readiness of every service").set_defaults(func=cmd_health)
    sub.add_parser("topics", help="list the broker's topics").set_defaults(func=cmd_topics)
    sch = sub.add_parser("schemas", help="write the JSON Schema of every topic (for producers outside the project)")
    sch.add_argument("--dir", help="where to write them (default: the package's schemas/, checked in)")
    sch.add_argument("--check", action="store_true", help="exit 1 if the checked-in schemas are out of date")
    sch.set_defaults(func=cmd_schemas)
    tok = sub.add_parser("tokens", help="create, list or revoke tokens (the token is the last line of create)")
    tok.add_argument("action", choices=["create", "list", "revoke"])
    tok.add_argument("token_id", nargs="?", help="for revoke: the token's id (or the token itself)")
    tok.add_argument("--role", choices=["admin", "manager", "csm", "integration", "reader"])
    tok.add_argument("--csm-id", help="role csm: the CSM the token acts as")
    tok.add_argument("--source", action="append", help="role integration: a source it may write (repeatable)")
    tok.add_argument("--commerce", action="store_true", help="role integration: may send purchases and returns")
    tok.add_argument("--name", help="who or what holds the token")
    tok.add_argument("--mongo-url", help="the database (default: FEEDBACK_MONGO_URL, else the dev stack's)")
    tok.add_argument("--auth-database", default="auth", help="the database holding the tokens")
    tok.set_defaults(func=cmd_tokens)
    pages = sub.add_parser("pages", help="list dead pages, or requeue them (all, or the ids given)")
    pages.add_argument("action", choices=["list", "requeue"])
    pages.add_argument("ids", nargs="*", help="for requeue: delivery ids (default: every dead page)")
    pages.add_argument("--limit", type=int, default=100)
    pages.add_argument("--token", help="an admin token (default: FEEDBACK_TOKEN, else the dev key)")
    pages.add_argument("--alerts-url", help="the alerts service (default: the dev stack's)")
    pages.set_defaults(func=cmd_pages)
    args = parser.parse_args(argv)
    if args.command == "tokens" and args.action == "create" and not args.role:
        parser.error("tokens create needs --role")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
