"""Drives herald serve with the unmodified official SDK, auth0-python 6.8, the way a team moving
off Auth0 would: only the base URL changes. Run by crates/api/tests/sdk.rs, which starts the
server and a worker, passes the tokens in the environment and checks what arrives by email.

Prints one JSON object: what was created, and the SDK error class seen for each status."""

import json
import os
import sys
import time

from auth0.management import Auth0
from auth0.management.core.api_error import ApiError
from auth0.management.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    TooManyRequestsError,
    UnauthorizedError,
)

BASE = os.environ["HERALD_API_URL"]

# A verify_email template as a team would paste it from Auth0: Liquid, branching on the user's
# language the way Auth0's documentation does, branded with the organization's variables.
VERIFY_BODY = """<html lang="{{ request_language }}"><head><style>
  .button { color: #ffffff; padding: 12px 20px; text-decoration: none; }
</style></head><body>
{% assign language = user.user_metadata.lang | slice: 0,2 %}
<h1 style="color: {{ organization.branding.colors.primary }}">{{ organization.display_name }}</h1>
{% if language == 'ja' %}
<p>{{ user.name | escape }} さん、{{ application.name }} へようこそ。メールアドレスを確認してください。</p>
{% else %}
<p>Hello {{ user.name | escape }}, welcome to {{ application.name }}. Please verify your email.</p>
{% endif %}
<p><a class="button" style="background: {{ organization.branding.colors.primary }}" href="{{ url }}">Verify</a></p>
<p>{{ friendly_name }}</p>
</body></html>"""


def client(token):
    # max_retries=0: the SDK retries 409 and 429 twice by default.
    return Auth0(base_url=BASE, token=token, max_retries=0)


def expect(ok, what, seen):
    if not ok:
        raise AssertionError(f"{what}: got {seen!r}")


def expect_error(cls, call, what):
    try:
        call()
    except cls:
        return
    raise AssertionError(f"{what}: expected {cls.__name__}")


def main():
    api = client(os.environ["HERALD_API_TOKEN"])
    out = {"errors": {}}

    org = api.organizations.create(
        name="kenji-corp",
        display_name="Kenji Corp",
        branding={"logo_url": "https://kenji.test/logo.png", "colors": {"primary": "#aa0000", "page_background": "#ffffff"}},
        metadata={"herald_default_locale": "ja"},
    )
    out["org_id"] = org.id
    out["org_by_name"] = api.organizations.get_by_name("kenji-corp").id
    app = api.clients.create(
        name="Kenji App",
        callbacks=["https://app.kenji.test/callback"],
        initiate_login_uri="https://app.kenji.test/login",
    )
    out["client_id"] = app.client_id
    out["client_name"] = api.clients.get(app.client_id).name

    template = api.email_templates.create(
        template="verify_email",
        syntax="liquid",
        enabled=True,
        body=VERIFY_BODY,
        from_="{{ application.name }} <no-reply@kenji.test>",
        subject="{% if user.user_metadata.lang == 'ja' %}{{ application.name }}: メールアドレスの確認{% else %}Verify your email{% endif %}",
        result_url="https://app.kenji.test/verified",
        url_lifetime_in_seconds=86400,
    )
    out["template_created"] = template.template
    api.email_templates.update("verify_email", include_email_in_redirect=False)
    got = api.email_templates.get("verify_email")
    out["template"] = {
        "syntax": got.syntax,
        "enabled": got.enabled,
        "url_lifetime_in_seconds": got.url_lifetime_in_seconds,
        "include_email_in_redirect": got.include_email_in_redirect,
        "result_url": got.result_url,
    }

    # The rest of the organization and client endpoints, on throwaway ones.
    spare_org = api.organizations.create(name="spare-org", display_name="Spare")
    api.organizations.update(spare_org.id, display_name="Spare Org", metadata={"tier": "gold"})
    fetched = api.organizations.get(spare_org.id)
    expect(fetched.display_name == "Spare Org", "organization update", fetched)
    api.organizations.delete(spare_org.id)
    expect_error(NotFoundError, lambda: api.organizations.get(spare_org.id), "deleted organization")
    spare_app = api.clients.create(name="Spare App")
    api.clients.update(spare_app.client_id, name="Spare App 2",
                       callbacks=["https://spare.test/cb"])
    fetched = api.clients.get(spare_app.client_id)
    expect(fetched.name == "Spare App 2", "client update", fetched)
    api.clients.delete(spare_app.client_id)
    expect_error(NotFoundError, lambda: api.clients.get(spare_app.client_id), "deleted client")
    spare_user = api.users.create(connection="Username-Password-Authentication",
                                  email="spare@example.com", verify_email=False)
    api.users.delete(spare_user.user_id)
    expect_error(NotFoundError, lambda: api.users.get(spare_user.user_id), "deleted user")
    out["lifecycle"] = "ok"

    user = api.users.create(
        connection="Username-Password-Authentication",
        email="kenji@example.com",
        name="Kenji",
        user_metadata={"lang": "ja"},
        password="a long enough password",
        verify_email=False,
    )
    uid = user.user_id
    out["user_id"] = uid
    out["user_name"] = api.users.get(uid).name
    api.users.update(uid, user_metadata={"plan": "pro"})
    out["metadata"] = api.users.get(uid).user_metadata
    out["by_email"] = [u.user_id for u in api.users.list_users_by_email(email="kenji@example.com")]

    job = api.jobs.verification_email.create(
        user_id=uid, organization_id=org.id, client_id=app.client_id
    )
    out["job_type"] = job.type
    out["job_first_status"] = job.status
    status = job.status
    for _ in range(200):
        status = api.jobs.get(job.id).status
        if status == "completed":
            break
        time.sleep(0.1)
    out["job_status"] = status

    out["verify_ticket"] = api.tickets.verify_email(user_id=uid, ttl_sec=3600).ticket
    out["reset_ticket"] = api.tickets.change_password(
        user_id=uid, mark_email_as_verified=True
    ).ticket
    enrollment = api.guardian.enrollments.create_ticket(
        user_id=uid, send_mail=True, email_locale="fr"
    )
    out["enroll_ticket_url"] = enrollment.ticket_url
    # Enrollments are made on the enrollment page; a new user has none. Deleting an unknown one
    # is Herald's 404 (Auth0's OAS lists no 404 there, so the SDK raises its generic ApiError).
    out["enrollments"] = [e.id for e in api.users.enrollments.get(uid)]
    try:
        api.guardian.enrollments.delete("totp|dev_0000000000000000")
        out["unknown_enrollment_delete"] = "no error"
    except ApiError as e:
        out["unknown_enrollment_delete"] = [e.status_code, e.body.get("errorCode")]

    def seen(status, call):
        try:
            call()
            out["errors"][status] = "no error"
        except Exception as e:  # noqa: BLE001 - the class is the result
            out["errors"][status] = type(e).__name__

    seen("400", lambda: api.tickets.verify_email(user_id=uid, ttl_sec=-1))
    seen("401", lambda: client("hrld_not-a-token").users.get(uid))
    seen("403", lambda: client(os.environ["HERALD_API_TOKEN_READONLY"]).users.delete(uid))
    seen("404", lambda: api.users.get("auth0|nobody"))
    seen(
        "409",
        lambda: api.users.create(
            connection="Username-Password-Authentication",
            email="kenji@example.com",
            verify_email=False,
        ),
    )

    seen(
        "409 template",
        lambda: api.email_templates.create(
            template="verify_email", syntax="liquid", enabled=True, body="<p>{{ url }}</p>"
        ),
    )
    seen(
        "400 template",
        lambda: api.email_templates.set(
            "reset_email", template="reset_email", syntax="liquid", enabled=True,
            body="<p>{% if url %}unclosed</p>",
        ),
    )
    seen(
        "404 template",
        lambda: api.email_templates.set(
            "reset_email", template="reset_email", syntax="liquid", enabled=True,
            body="<p>{{ url }}</p>",
        ),
    )

    limited = client(os.environ["HERALD_API_TOKEN_LIMITED"])

    def exhaust():
        # Faster than the limit's refill: the burst runs out within a few hundred calls.
        for _ in range(2000):
            limited.users.get(uid)

    seen("429", exhaust)
    expected = {
        "400": BadRequestError,
        "401": UnauthorizedError,
        "403": ForbiddenError,
        "404": NotFoundError,
        "409": ConflictError,
        "409 template": ConflictError,
        "400 template": BadRequestError,
        "404 template": NotFoundError,
        "429": TooManyRequestsError,
    }
    out["errors_expected"] = {k: v.__name__ for k, v in expected.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report, with the body the server answered
        print(json.dumps({"crash": repr(e), "body": getattr(e, "body", None)}))
        sys.exit(1)
