"""schemathesis hooks for crates/api/tests/schemathesis.rs: only JSON request bodies are sent.

The document lists `application/x-www-form-urlencoded` beside JSON for every body, as Herald (and
Auth0) accept both. In such a body an object property is a JSON string and an array property is its
key repeated: the defaults of OpenAPI 3.1's Encoding Object, and what `Payload` parses. schemathesis
4.32.5 writes form bodies its own way before any serializer sees them: nested objects flattened into
`branding[colors][primary]=...` keys and null written as the text `null`. Those requests are not the
ones the document describes, so Herald rightly refuses them, and schemathesis would report every one
as a valid request rejected. The form door is tested in `payload.rs` and `tests/api.rs` instead.
"""

import schemathesis

FORM = "application/x-www-form-urlencoded"


@schemathesis.hook
def filter_case(context, case):
    return case.media_type != FORM


@schemathesis.hook
def before_add_examples(context, examples):
    # The examples phase does not go through `filter_case`.
    examples[:] = [case for case in examples if case.media_type != FORM]


# The one custom domain the test's `herald serve` allows (HERALD_ALLOWED_CUSTOM_DOMAINS).
ALLOWED_DOMAIN = "id.custom.test"


@schemathesis.hook
def map_case(context, case):
    # Which `auth0-custom-domain` values are valid is configuration, not schema: a valid request
    # names an allowed domain, so positive cases get the test's one.
    meta = case.meta
    headers = case.headers or {}
    if meta is not None and meta.generation.mode.is_positive and "auth0-custom-domain" in headers:
        headers["auth0-custom-domain"] = ALLOWED_DOMAIN
    return case


# Answers that depend on what the database holds, not on the request's shape. Auth0 answers them
# with 400 (and so does Herald, for SDK compatibility), while schemathesis expects a valid request
# to be refused only with 401, 403, 404, 409 or 429. Only these exact messages are let through,
# and only as "valid request rejected" (ST202); every other check still applies to them.
STATE_DEPENDENT_400 = (
    # A user made without an email address cannot be sent a ticket or an email.
    "The user does not have an email address.",
    # An `identity` the named user does not have (Auth0's words).
    "The user exists, but does not contain the given identity.",
    # A body that names an organization, a client or a connection that does not exist.
    "The organization does not exist",
    "The client does not exist",
    # ... and "The connection with id con_… does not exist.", matched below.
)


# Answers that depend on a template's content, which JSON Schema cannot describe: a Liquid or
# handlebars template that does not compile or render, a From line that does not render to a
# mailbox, a resultUrl that does not render to an http(s) URL, and a body naming another template
# than the path. The document says so in the operations' 400 answers.
CONTENT_DEPENDENT_400 = (
    " is refused: ",
    "' on property from.",
    "' on property resultUrl.",
    "The template name must be ",
    # A NUL anywhere inside user_metadata or app_metadata (PostgreSQL's jsonb cannot hold it):
    # JSON Schema cannot forbid a character at any depth of a free-form object.
    "Metadata must not contain NUL characters",
)


@schemathesis.hook
def filter_failure(context, failure, case, response):
    # Failed authentications are limited to 10 a second per client address (a guard against
    # guessing tokens); schemathesis sends its unauthenticated requests faster than that, and the
    # ones over the limit get 429 rather than 401. That is the guard working, not a wrong answer.
    # The failure is reported with the case's own response; the 429 is the answer to the
    # re-sent, unauthenticated request, named in the failure's message.
    if getattr(failure, "code", None) == "ST401" and (
        response.status_code == 429 or "429" in str(getattr(failure, "message", ""))
    ):
        return False
    if getattr(failure, "code", None) != "ST202" or response.status_code != 400:
        return True
    try:
        message = response.json().get("message", "")
    except Exception:
        return True
    if any(part in message for part in CONTENT_DEPENDENT_400):
        return False
    if message.startswith("The connection with id "):
        return not message.endswith(" does not exist.")
    return message not in STATE_DEPENDENT_400
