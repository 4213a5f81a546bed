"""The playground's workspace and demo tokens.

The workspace: four people (Ana, an Account Administrator through TOKENDESK_ADMINS; Sam, an
Implementation Specialist granted directly; Gus, a member of the user group Ops, which is
mapped to Implementation Specialist; Nora, who holds no role), the channel #token-desk and an
alerts channel, all with Token Desk in them.

The tokens: one of every kind the app tells apart, made through the store's own API at the
moments they would have been made (the seeding store's clock is set back to each one), so
that their dates, audit trail and last-used times are the ones real use would leave. Their
secrets are random on every run and never leave this process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from bot.settings import Settings
from slack_standin.server import SlackStandIn
from storage.credential_index import RETIRED
from storage.credentials import load_or_create_key
from storage.models import IssuedToken, Role
from storage.store import Store

ANA, SAM, GUS, NORA = "U0PLAYADM", "U0PLAYSAM", "U0PLAYGUS", "U0PLAYNOR"
OPS_GROUP = "S0PLAYOPS"
DESK_CHANNEL, DESK_NAME = "C0PLAYDESK", "token-desk"
ALERTS_CHANNEL, ALERTS_NAME = "C0PLAYALRT", "token-desk-alerts"
DAY = 86_400.0


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    title: str


PEOPLE = (
    Person(ANA, "Ana", "Account Administrator"),
    Person(SAM, "Sam", "Implementation Specialist"),
    Person(GUS, "Gus", "Ops group: Implementation Specialist"),
    Person(NORA, "Nora", "No role"),
)


@dataclass
class DemoTokens:
    """What the seed made, by token name: the current secrets, and the secret a Reset
    replaced that is still presented. For the tests only: none of it is shown or logged."""

    secrets: dict[str, str] = field(default_factory=dict)
    retired: dict[str, str] = field(default_factory=dict)


class _SeedClock:
    """The wall clock, set back by a number of days while the past is being written."""

    def __init__(self) -> None:
        self.days_back = 0.0

    def __call__(self) -> float:
        return time.time() - self.days_back * DAY

    def today(self) -> date:
        return datetime.fromtimestamp(self(), UTC).date()


def add_workspace(standin: SlackStandIn) -> None:
    """The people, their user group and the channels, in the stand-in."""
    for person in PEOPLE:
        standin.add_user(person.id, name=person.name.lower())
    standin.set_group(OPS_GROUP, [GUS])
    standin.add_channel(DESK_CHANNEL, name=DESK_NAME)
    standin.add_channel(ALERTS_CHANNEL, name=ALERTS_NAME)


async def seed_tokens(settings: Settings) -> DemoTokens:
    """Fills the empty database of `settings` with the roles and the demo tokens; the store
    it uses is closed before this returns, so that the app opens its own."""
    clock = _SeedClock()
    configured = settings.tokendesk_secret_key
    key = load_or_create_key(
        settings.tokendesk_db, configured.get_secret_value() if configured else None
    )

    async def opened(api_versions: tuple[str, ...]) -> Store:
        return await Store.open(
            path=settings.tokendesk_db,
            secret_key=key,
            api_versions=api_versions,
            scopes=settings.tokendesk_scopes,
            admins=settings.tokendesk_admins,
            max_lifetime_days=settings.tokendesk_max_lifetime_days,
            clock=clock,
        )

    made = DemoTokens()
    # One token made while only the oldest API version existed, so that Upgrade Version has
    # something to do.
    older = await opened(settings.tokendesk_api_versions[:1])
    try:
        clock.days_back = 120
        issued = await older.tokens.create(
            actor=ANA,
            name="Partner portal v1",
            description="Replaced by the new partner portal.",
            access_rights=["reports:read"],
            primary_contact=SAM,
            # Stopped a month ago: the expired one of the demo.
            expires_on=clock.today() + timedelta(days=90),
        )
        made.secrets[issued.token.name] = issued.secret
    finally:
        await older.close()
    store = await opened(settings.tokendesk_api_versions)
    try:
        return await _seed(store, clock, made)
    finally:
        await store.close()


async def _seed(store: Store, clock: _SeedClock, made: DemoTokens) -> DemoTokens:
    clock.days_back = 200
    # Off until an administrator turns it on: every auth check fails while it is off.
    await store.account.set_api_access(actor=ANA, enabled=True)
    await store.roles.grant_user(actor=ANA, user_id=SAM, role=Role.SPECIALIST)
    await store.roles.grant_group(actor=ANA, group_id=OPS_GROUP, role=Role.SPECIALIST)

    async def create(
        days_ago: float,
        name: str,
        contact: str,
        rights: tuple[str, ...],
        *,
        lifetime_days: int = 90,
        description: str = "",
        actor: str = ANA,
    ) -> IssuedToken:
        clock.days_back = days_ago
        issued = await store.tokens.create(
            actor=actor,
            name=name,
            description=description,
            access_rights=list(rights),
            primary_contact=contact,
            expires_on=clock.today() + timedelta(days=lifetime_days),
        )
        made.secrets[name] = issued.secret
        return issued

    def use(name: str, days_ago: float) -> None:
        clock.days_back = days_ago
        store.credentials.check(made.secrets[name])

    legacy = await create(
        200,
        "Legacy CRM import",
        NORA,
        ("contacts:read", "contacts:write"),
        lifetime_days=300,
        description="One-off import from the old CRM; nobody has run it since spring.",
    )
    use(legacy.token.name, 150)
    await create(90, "Reporting API sandbox", SAM, ("reports:read",), lifetime_days=200)
    reporting = await create(60, "Old reporting job", GUS, ("reports:read", "reports:write"))
    clock.days_back = 20
    await store.tokens.set_enabled(actor=ANA, token_id=reporting.token.id, enabled=False)
    await create(85, "Billing sync", ANA, ("reports:read", "actions:read"))
    export = await create(50, "Nightly data export", SAM, ("reports:read",), lifetime_days=120)
    await create(
        45, "Mobile app backend", GUS, ("actions:read", "actions:write"), lifetime_days=180
    )
    portal = await create(30, "Partner portal", SAM, ("reports:read", "contacts:read"))
    leaky = await create(20, "Support inbox webhook", GUS, ("webhooks:manage",), actor=SAM)
    await create(3, "Analytics dashboard", NORA, ("reports:read",), actor=SAM)
    await create(0, "Website contact form", ANA, ("contacts:write",))

    clock.days_back = 10
    renewed = await store.tokens.reset(
        actor=SAM,
        token_id=export.token.id,
        row_version=export.token.row_version,
        expires_on=clock.today() + timedelta(days=90),
    )
    made.retired[export.token.name] = export.secret
    made.secrets[export.token.name] = renewed.secret
    await store.credentials.flush_last_used()

    clock.days_back = 2
    await store.leaks.report(
        candidates=[leaky.secret],
        channel=DESK_CHANNEL,
        message_ts=f"{clock():.6f}",
        poster=GUS,
        disable=False,
    )

    clock.days_back = 1
    in_grace = await store.tokens.reset(
        actor=ANA,
        token_id=portal.token.id,
        row_version=portal.token.row_version,
        expires_on=clock.today() + timedelta(days=90),
        grace=timedelta(days=3),
    )
    made.secrets[portal.token.name] = in_grace.secret

    for name in ("Billing sync", "Mobile app backend", "Nightly data export", "Partner portal"):
        use(name, 0)
    presented = store.credentials.check(export.secret)
    if presented.reason == RETIRED:
        store.credentials.record_retired(presented, lambda: ("203.0.113.24", "nightly-export/1.4"))
    await store.credentials.flush_last_used()
    clock.days_back = 0
    return made
