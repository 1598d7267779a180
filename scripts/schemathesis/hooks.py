"""Schemathesis hooks for scripts/check-api: they put real credentials where the
documents can only describe them, so that generated requests reach past the
authentication checks, and they keep the run's own accounts alive.

- The run's credentials (`LK_AUTH` says which: `bearer`, `key` or `both`) are an
  authentication provider of schemathesis's own, so its authentication checks can
  leave them out or spoil them on purpose and see the request refused.
- A body with a password gets, a third of the time, the real credentials of the
  run's user or of the user with TOTP, so that logins succeed on every surface.
- A body field `mfa_token` / `mfaToken` gets, half of the time, a fresh MFA token
  from a password login of a user with TOTP.
- A path parameter `id` gets, a third of the time each, the id of a user anyone may
  harm (the victim) or of the run's own user; a deletion aimed at the run's own
  users (but for turning off the run user's own MFA), or any change to the user
  with TOTP, goes to the victim instead.
- Logout runs on a session of its own, and a session ended by id is never the run's,
  so neither can end the one the run uses.
- A password change (`/v1/me/password`, Mudbase's `/api/users/password`) runs as a
  user of its own, signed up for it: it ends the user's other sessions and replaces
  the password, which the run's users keep. Its `currentPassword` /
  `current_password` is the real one a third of the time, so changes happen. A recovery link (`/v1/users/{id}/recovery`) ends every session of its user, so
  it is only ever issued for the victim.
- Every answer's status is appended to `LK_STATUS_LOG` (one JSON line each), so
  scripts/check-api can tell from the statuses themselves which operations never
  got past authentication.

The credentials come from the environment that scripts/check-api sets up.
"""
import json
import os
import random
import uuid
import urllib.error
import urllib.request

import schemathesis

BASE = os.environ["LK_BASE"]
AUTH = os.environ["LK_AUTH"]
TOKEN = os.environ["LK_TOKEN"]
API_KEY = os.environ["LK_API_KEY"]
USER_EMAIL = os.environ["LK_USER_EMAIL"]
USER_ID = os.environ["LK_USER_ID"]
MFA_EMAIL = os.environ["LK_MFA_EMAIL"]
MFA_ID = os.environ["LK_MFA_ID"]
PASSWORD = os.environ["LK_PASSWORD"]
VICTIM_ID = os.environ["LK_VICTIM_ID"]
SESSION_ID = os.environ["LK_SESSION_ID"]
STATUS_LOG = os.environ["LK_STATUS_LOG"]

PROTECTED = {USER_ID, MFA_ID}
# Operations that change the signed-in user's password: each runs as a user of its own.
OWN_USER = {"/v1/me/password", "/api/users/password", "/users/password"}


def login(email, field):
    """A fresh token from a password login, or None when the login is refused."""
    body = json.dumps({"email": email, "password": PASSWORD}).encode()
    request = urllib.request.Request(
        BASE + "/v1/auth/login", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response).get(field)
    except (urllib.error.URLError, ValueError):
        return None


def throwaway_token():
    """The access token of a user signed up for one request (a password change)."""
    email = "pw-" + uuid.uuid4().hex + "@example.com"
    body = json.dumps({"email": email, "password": PASSWORD}).encode()
    request = urllib.request.Request(
        BASE + "/v1/auth/signup", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except urllib.error.URLError:
        return None
    return login(email, "access_token")


def fresh_session_id():
    """The id of a new session of the run's user, for a request that ends one."""
    token = login(USER_EMAIL, "access_token")
    if token is None:
        return "none"
    request = urllib.request.Request(BASE + "/v1/me", headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["session"]["id"]
    except (urllib.error.URLError, ValueError, KeyError):
        return "none"


@schemathesis.auth()
class Credentials:
    """The run's credentials, as schemathesis's own authentication: its checks know
    them, so they can leave them out or spoil them on purpose and expect a refusal."""

    def get(self, case, ctx):
        return TOKEN

    def set(self, case, data, ctx):
        headers = dict(case.headers or {})
        token = data
        # Logout ends the session of the token it is given: a fresh session's, never
        # the run's own.
        if case.operation.path == "/v1/auth/logout":
            token = login(USER_EMAIL, "access_token") or "expired"
        if case.operation.path in OWN_USER:
            token = throwaway_token() or "expired"
        if AUTH in ("bearer", "both"):
            headers["Authorization"] = "Bearer " + token
        if AUTH in ("key", "both"):
            headers["X-API-Key"] = API_KEY
        case.headers = headers


@schemathesis.hook
def before_call(ctx, case, kwargs):
    body = case.body if isinstance(case.body, dict) else None
    for field in ("mfa_token", "mfaToken"):
        if body is not None and field in body and random.random() < 0.5:
            body[field] = login(MFA_EMAIL, "mfa_token") or body[field]

    # Only where the user is the request's own: elsewhere the real password would let
    # a generated request turn MFA on or off for the run's users.
    for field in ("currentPassword", "current_password"):
        own = case.operation.path in OWN_USER
        if own and body is not None and field in body and random.random() < 1 / 3:
            body[field] = PASSWORD

    if body is not None and "password" in body and random.random() < 1 / 3:
        for field in ("email", "username"):
            if field in body:
                body[field] = random.choice([USER_EMAIL, MFA_EMAIL])
                body["password"] = PASSWORD

    params = case.path_parameters
    # Ending a session by id: never the run's own (schemathesis reuses ids it saw in
    # `GET /v1/me/sessions`), but a fresh one of the same user.
    if case.operation.path == "/v1/me/sessions/{id}":
        if params and params.get("id") == SESSION_ID:
            params["id"] = fresh_session_id()
        return
    if params and "id" in params:
        roll = random.random()
        if roll < 1 / 3:
            params["id"] = VICTIM_ID
        elif roll < 2 / 3:
            params["id"] = USER_ID
        method = case.method.upper()
        # Turning off the run user's own MFA ends no session, so that one may happen.
        own_mfa = params["id"] == USER_ID and case.operation.path == "/v1/users/{id}/mfa"
        if (method == "DELETE" and params["id"] in PROTECTED and not own_mfa) or (
            method != "GET" and params["id"] == MFA_ID
        ):
            params["id"] = VICTIM_ID
        # A recovery link ends every session of its user.
        if case.operation.path == "/v1/users/{id}/recovery" and params["id"] in PROTECTED:
            params["id"] = VICTIM_ID


@schemathesis.hook
def after_call(ctx, case, response):
    with open(STATUS_LOG, "a", encoding="utf-8") as log:
        line = {"method": case.method.upper(), "path": case.operation.path, "status": response.status_code}
        log.write(json.dumps(line) + "\n")
