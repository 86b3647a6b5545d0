"""Signed checkpoints: written when the chain moved, signed with the deployment's key,
published with their keys, mailed to witnesses, and checked by ``audit verify``, which
finds a forged checkpoint, an unpublished key, a cut tail and a rewritten chain."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from rq import SimpleWorker
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from crm import create_app, jobs
from crm.audit import checkpoints, verifier
from crm.audit.merkle import MerkleTree
from crm.audit.models import AuditCheckpoint, AuditEvent
from crm.audit.proofs import BLOCK
from crm.audit.service import Actor, record
from crm.config import ConfigError, from_environment
from crm.extensions import db
from crm.notify.models import OutboxMessage
from tests.conftest import acting_for, requires_redis, submit
from tests.test_audit import _tamper
from tests.test_audit_holes import _rewrite_chain


def checkpoint_cli(runner, tenant):
    return runner.invoke(args=["audit", "checkpoint", "--tenant", tenant.slug])


def verify(runner, tenant):
    return runner.invoke(args=["audit", "verify", "--tenant", tenant.slug])


def grow(app, tenant, n: int = 3) -> None:
    with acting_for(app, tenant) as session:
        for step in range(n):
            record("test.step", "widget", step, actor=Actor.system())
        session.commit()


def stored(app, tenant) -> list[dict]:
    with acting_for(app, tenant):
        return [checkpoints.document(row, tenant.slug) for row in reversed(checkpoints.listed())]


def event_hashes(app, tenant) -> list[str]:
    with acting_for(app, tenant) as session:
        return list(session.scalars(select(AuditEvent.hash).order_by(AuditEvent.seq)))


def test_a_checkpoint_signs_the_chain_as_it_stands(app, runner, make_tenant):
    tenant = make_tenant()
    grow(app, tenant)
    result = checkpoint_cli(runner, tenant)
    assert result.exit_code == 0, result.output
    [signed] = stored(app, tenant)
    hashes = event_hashes(app, tenant)
    size = signed["tree_size"]
    assert (
        result.output.strip()
        == f"checkpoint: tree size {size}, root {signed['root']}, key {signed['key_id']}"
    )
    assert signed["root"] == MerkleTree(hashes[:size]).root()
    assert signed["head_hash"] == hashes[size - 1]
    assert (signed["tenant"], signed["tenant_id"]) == (tenant.slug, tenant.id)
    assert signed["time"].endswith("Z")
    with app.app_context():
        keys = checkpoints.current_key().known()
    assert verifier.signature_holds(
        keys[signed["key_id"]], verifier.checkpoint_message(signed), signed["signature"]
    )
    # Its own event follows it on the chain, and is not a reason for another.
    assert hashes[size:] and len(hashes) == size + 1
    with acting_for(app, tenant) as session:
        assert session.scalar(select(AuditEvent.action).where(AuditEvent.seq == size + 1)) == (
            "audit.checkpoint_written"
        )
    assert checkpoint_cli(runner, tenant).output.startswith(f"unchanged: tree size {size},")
    grow(app, tenant, 1)
    assert checkpoint_cli(runner, tenant).output.startswith(f"checkpoint: tree size {size + 2},")
    result = verify(runner, tenant)
    assert result.exit_code == 0, result.output
    assert "checkpoints: 2, each signed by a published key and matching the chain" in result.output


def test_checkpoints_are_append_only(app, runner, make_tenant):
    tenant = make_tenant()
    checkpoint_cli(runner, tenant)
    for statement in ("UPDATE audit_checkpoints SET root = 'x'", "DELETE FROM audit_checkpoints"):
        with acting_for(app, tenant) as session:
            # The trigger refuses it; connected as the application role, its grants first.
            with pytest.raises(DBAPIError, match=r"append-only|permission denied"):
                session.execute(text(statement))
            session.rollback()
    assert len(stored(app, tenant)) == 1


def _sign_again(app, tenant, change, *, key: Ed25519PrivateKey | None = None) -> None:
    """Rewrite the tenant's last checkpoint behind the app's back (``change`` edits its
    fields), signing it with ``key`` if given, else leaving the old signature."""
    [*_, last] = stored(app, tenant)
    fields = change(dict(last))
    if key is not None:
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        fields["key_id"] = verifier.key_id(public)
        fields["signature"] = base64.b64encode(key.sign(verifier.checkpoint_message(fields))).decode()
    _tamper(
        app,
        [
            (
                f"UPDATE audit_checkpoints SET root = '{fields['root']}', key_id = '{fields['key_id']}',"
                f" signature = '{fields['signature']}'"
                f" WHERE tenant_id = ? AND tree_size = {last['tree_size']}",
                (tenant.id,),
            )
        ],
    )


def test_verify_finds_a_forged_checkpoint(app, runner, make_tenant):
    tenant = make_tenant()
    checkpoint_cli(runner, tenant)
    [signed] = stored(app, tenant)
    _sign_again(app, tenant, lambda fields: {**fields, "root": "00" * 32})
    result = verify(runner, tenant)
    assert result.exit_code == 1
    failed = f"FAILED at checkpoint of tree size {signed['tree_size']} ({signed['time']}): "
    assert failed + "its signature does not hold" in result.output


def test_verify_finds_a_checkpoint_signed_by_a_key_that_is_not_published(app, runner, make_tenant):
    tenant = make_tenant()
    checkpoint_cli(runner, tenant)
    stranger = Ed25519PrivateKey.generate()
    _sign_again(app, tenant, lambda fields: fields, key=stranger)
    stranger_id = verifier.key_id(stranger.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    result = verify(runner, tenant)
    assert result.exit_code == 1
    assert f"signed by a key that is not published ({stranger_id})" in result.output


def test_verify_finds_a_chain_rewritten_behind_a_checkpoint(app, runner, busy_tenant):
    """The chain alone verifies after a consistent rewrite; its checkpoint does not."""
    checkpoint_cli(runner, busy_tenant)
    [signed] = stored(app, busy_tenant)

    def rewrite(seq, body):
        if seq == 3:
            body[10] = '{"forged":true}'

    _rewrite_chain(app, busy_tenant, rewrite)
    result = verify(runner, busy_tenant)
    assert result.exit_code == 1
    failed = f"FAILED at checkpoint of tree size {signed['tree_size']} ({signed['time']}): "
    assert failed + "its root does not match the chain: the chain was rewritten after it" in result.output


def test_verify_finds_a_tail_cut_behind_a_checkpoint(app, runner, make_tenant):
    tenant = make_tenant()
    grow(app, tenant, 4)
    checkpoint_cli(runner, tenant)
    [signed] = stored(app, tenant)
    keep = signed["tree_size"] - 2
    kept_hash = event_hashes(app, tenant)[keep - 1]
    # A consistent cut: the events after `keep` and the head moved back to it.
    _tamper(
        app,
        [
            (f"DELETE FROM audit_events WHERE tenant_id = ? AND seq > {keep}", (tenant.id,)),
            (f"UPDATE audit_heads SET seq = {keep}, hash = '{kept_hash}' WHERE tenant_id = ?", (tenant.id,)),
        ],
    )
    result = verify(runner, tenant)
    assert result.exit_code == 1
    assert (
        f"FAILED at checkpoint of tree size {signed['tree_size']} ({signed['time']}): it covers "
        f"{signed['tree_size']} events but the chain holds {keep}: the chain was cut" in result.output
    )


def test_the_keys_endpoint_publishes_the_current_key_and_old_ones(app, client, runner, make_tenant):
    with app.app_context():
        current = checkpoints.current_key()
    published = client.get("/.well-known/ledgerdesk-keys.json")
    assert published.status_code == 200 and published.mimetype == "application/json"
    assert published.json == {
        "keys": [
            {
                "algorithm": "Ed25519",
                "current": True,
                "key_id": current.key_id,
                "public_key": current.public_key,
            }
        ]
    }
    # After a rotation the old key stays published, and what it signed still verifies.
    tenant = make_tenant()
    checkpoint_cli(runner, tenant)
    rotated = create_app(
        {
            **{key: app.config[key] for key in ("TESTING", "SQLALCHEMY_DATABASE_URI", "PUBLIC_BASE_URL")},
            "AUDIT_SIGNING_KEY": Ed25519PrivateKey.generate(),
            "AUDIT_OLD_PUBLIC_KEYS": [current.public_key],
        }
    )
    keys = rotated.test_client().get("/.well-known/ledgerdesk-keys.json").json["keys"]
    assert [(key["current"], key["key_id"] == current.key_id) for key in keys] == [
        (True, False),
        (False, True),
    ]
    result = rotated.test_cli_runner().invoke(args=["audit", "verify", "--tenant", tenant.slug])
    assert result.exit_code == 0, result.output
    # Without the old key published, the same checkpoint is refused.
    unpublished = create_app(
        {
            **{key: app.config[key] for key in ("TESTING", "SQLALCHEMY_DATABASE_URI", "PUBLIC_BASE_URL")},
            "AUDIT_SIGNING_KEY": Ed25519PrivateKey.generate(),
        }
    )
    result = unpublished.test_cli_runner().invoke(args=["audit", "verify", "--tenant", tenant.slug])
    assert result.exit_code == 1 and f"not published ({current.key_id})" in result.output
    for made in (rotated, unpublished):
        with made.app_context():
            db.engine.dispose()


def test_witnesses_receive_each_new_checkpoint_through_the_outbox(app, client, runner, signed_in):
    tenant, _ = signed_in("admin")
    page = f"/t/{tenant.slug}/audit/checkpoints"
    saved = submit(
        client,
        f"{page}/witnesses",
        {"witnesses": "inspector@regulator.example\n\n法务@律所.example"},
        form_page=page,
    )
    assert saved.status_code == 302
    checkpoint_cli(runner, tenant)
    [signed] = stored(app, tenant)
    with acting_for(app, tenant) as session:
        mails = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        changed = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "audit.witnesses_changed")
        ).one()
    assert [mail.to_address for mail in mails] == ["inspector@regulator.example", "法务@律所.example"]
    assert json.loads(mails[0].body.splitlines()[-1]) == signed
    assert "inspector" not in json.dumps(changed.data)  # digests only
    assert len(changed.data["after_sha256"]) == 2


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("not an address", "not an address is not an email address."),
        ("a@example.com\nA@example.com", "An address is listed twice."),
        ("\n".join(f"w{n}@example.com" for n in range(11)), "At most 10 witnesses."),
        ("x" * 4000, "Field cannot be longer than 3000 characters."),
    ],
)
def test_bad_witness_addresses_are_refused_and_nothing_changes(app, client, signed_in, typed, message):
    tenant, _ = signed_in("admin")
    page = f"/t/{tenant.slug}/audit/checkpoints"
    refused = submit(client, f"{page}/witnesses", {"witnesses": typed}, form_page=page)
    assert refused.status_code == 422
    assert message in refused.text
    with acting_for(app, tenant):
        assert checkpoints.witnesses() == []


def test_the_checkpoints_page_lists_them_and_only_admins_set_witnesses(
    app, client, runner, signed_in, make_user
):
    tenant, _ = signed_in("manager")
    checkpoint_cli(runner, tenant)
    [signed] = stored(app, tenant)
    page = client.get(f"/t/{tenant.slug}/audit/checkpoints")
    assert page.status_code == 200
    assert signed["root"][:16] in page.text and signed["key_id"] in page.text
    assert "Save witnesses" not in page.text
    download = client.get(f"/t/{tenant.slug}/audit/checkpoints/{signed['tree_size']}.json")
    assert download.status_code == 200 and json.loads(download.data) == signed
    assert client.get(f"/t/{tenant.slug}/audit/checkpoints/{signed['tree_size'] + 1}.json").status_code == 404
    refused = client.post(
        f"/t/{tenant.slug}/audit/checkpoints/witnesses", data={"witnesses": "a@example.com"}
    )
    assert refused.status_code in (400, 403)


def test_another_tenants_checkpoint_is_not_found(app, client, runner, signed_in, make_tenant):
    other = make_tenant()
    grow(app, other, 30)
    checkpoint_cli(runner, other)
    [theirs] = stored(app, other)
    tenant, _ = signed_in("admin")
    assert client.get(f"/t/{tenant.slug}/audit/checkpoints/{theirs['tree_size']}.json").status_code == 404
    assert theirs["root"][:16] not in client.get(f"/t/{tenant.slug}/audit/checkpoints").text


def test_an_auditors_reading_of_checkpoints_is_recorded(app, client, runner, signed_in):
    tenant, _ = signed_in("auditor")
    checkpoint_cli(runner, tenant)
    [signed] = stored(app, tenant)
    assert client.get(f"/t/{tenant.slug}/audit/checkpoints").status_code == 200
    assert client.get(f"/t/{tenant.slug}/audit/checkpoints/{signed['tree_size']}.json").status_code == 200
    with acting_for(app, tenant) as session:
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.seq > signed["tree_size"])).all()
    assert "audit.viewed" in actions and "export.created" in actions


def test_checkpoint_all_signs_only_chains_that_moved(app, runner, make_tenant):
    quiet, busy = make_tenant(), make_tenant()
    checkpoint_cli(runner, quiet)
    checkpoint_cli(runner, busy)
    grow(app, busy)
    with app.app_context():
        written = checkpoints.checkpoint_all()
    assert busy.slug in written and quiet.slug not in written
    assert runner.invoke(args=["audit", "checkpoint-all"]).output.startswith("checkpoints written for ")


def test_periods_are_booked_on_multiples_of_the_setting(app):
    at = datetime(2026, 12, 4, 10, 3, 20, tzinfo=UTC)
    booked = {}
    with app.app_context():
        app.config["REDIS_URL"] = "redis://unused"
        try:
            original = jobs.schedule_at
            jobs.schedule_at = lambda when, func, job_id: booked.setdefault(job_id, when)
            assert jobs.book_next_minute(checkpoints.checkpoint_job, "p-", at, every=10) == "p-202612041010"
            assert jobs.book_next_minute(checkpoints.checkpoint_job, "p-", at) == "p-202612041004"
        finally:
            jobs.schedule_at = original
            app.config["REDIS_URL"] = None
    assert booked["p-202612041010"] == datetime(2026, 12, 4, 10, 10, tzinfo=UTC)


@requires_redis
def test_the_worker_signs_checkpoints_every_period(rq_app, make_tenant):
    tenant = make_tenant()
    grow(rq_app, tenant)
    with rq_app.app_context():
        booked = checkpoints.schedule_checkpoints(now=datetime.now(UTC) - timedelta(minutes=10))
        registry = jobs.queue().scheduled_job_registry
        assert registry.get_job_ids() == [booked]
        SimpleWorker([jobs.queue()], connection=jobs.redis_connection()).work(burst=True, with_scheduler=True)
        [next_job] = registry.get_job_ids()
        assert next_job.startswith(checkpoints.CHECKPOINT_JOB_PREFIX) and next_job != booked
    with acting_for(rq_app, tenant) as session:
        assert session.scalar(select(AuditCheckpoint.tree_size)) is not None


def test_production_needs_a_readable_signing_key(tmp_path):
    production = {
        "CRM_ENV": "production",
        "SECRET_KEY": "s" * 40,
        "PUBLIC_BASE_URL": "https://desk.example.com",
    }
    with pytest.raises(ConfigError, match="AUDIT_SIGNING_KEY_FILE"):
        from_environment(tmp_path, production)
    with pytest.raises(ConfigError, match="AUDIT_SIGNING_KEY_FILE: cannot read"):
        from_environment(tmp_path, {**production, "AUDIT_SIGNING_KEY_FILE": str(tmp_path / "missing.pem")})
    with pytest.raises(ConfigError, match="AUDIT_SIGNING_KEY must be the base64"):
        from_environment(tmp_path, {**production, "AUDIT_SIGNING_KEY": "not base64!"})
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    config = from_environment(tmp_path, {**production, "AUDIT_SIGNING_KEY_FILE": str(pem)})
    assert config["AUDIT_SIGNING_KEY"].public_key() == key.public_key()
    assert not (tmp_path / "audit-signing-key.pem").exists()  # no development key in production


def test_development_creates_its_key_once(tmp_path):
    first = from_environment(tmp_path, {})["AUDIT_SIGNING_KEY"]
    again = from_environment(tmp_path, {})["AUDIT_SIGNING_KEY"]
    raw = first.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    assert raw == again.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    assert (tmp_path / "audit-signing-key.pem").stat().st_mode & 0o077 == 0


def test_verify_finds_stored_block_roots_that_break_consistency_proofs(app, runner, make_tenant):
    """The events and both checkpoints are intact, but a stored block root is wrong: the
    consistency proof between the checkpoints, built as bundles build theirs, fails."""
    tenant = make_tenant()
    with acting_for(app, tenant) as session:
        already = session.scalar(select(func.count()).select_from(AuditEvent))
    grow(app, tenant, BLOCK + 3 - already)
    checkpoint_cli(runner, tenant)
    grow(app, tenant, BLOCK + 300)
    checkpoint_cli(runner, tenant)
    older, newer = stored(app, tenant)
    assert verify(runner, tenant).exit_code == 0
    _tamper(
        app,
        [
            (
                "UPDATE audit_merkle_blocks SET hash = :hash WHERE tenant_id = :tenant AND block = 0",
                {"hash": "ab" * 32, "tenant": tenant.id},
            )
        ],
    )
    result = verify(runner, tenant)
    assert result.exit_code == 1
    assert (
        f"FAILED at checkpoint of tree size {older['tree_size']} ({older['time']}): no consistency proof "
        f"leads from it to the checkpoint of tree size {newer['tree_size']}: the stored block roots "
        "(audit_merkle_blocks) disagree with the chain" in result.output
    )
