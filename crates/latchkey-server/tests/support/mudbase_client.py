"""A Mudbase client, the SDK from PyPI (`pip install mudbase`), against Latchkey: it
signs in, forgets its password, resets it from the emailed link, signs in with the new
one and changes it back; then turns 2FA on and signs in with it, with nothing but what
the SDK has (login, then the code to /api/users/2fa/verify, then an authenticated
call with the same token). Usage: mudbase_client.py <base URL> <outbox dir> <email>
<password> <the server's Unix time>. Prints one line per step; exits non-zero on the
first surprise."""

import email
import email.policy
import pathlib
import re
import sys
import time

import mudbase
import pyotp
from mudbase.api.authentication_api import AuthenticationApi
from mudbase.api.users_api import UsersApi
from mudbase.models.change_password_request import ChangePasswordRequest
from mudbase.models.login_request import LoginRequest
from mudbase.models.request_password_reset_request import RequestPasswordResetRequest
from mudbase.models.reset_password_request import ResetPasswordRequest
from mudbase.models.validate_password_reset_token_request import ValidatePasswordResetTokenRequest
from mudbase.models.verify2_fa_request import Verify2FARequest

base, outbox, address, password, server_time = sys.argv[1:6]
server_time = int(server_time)
NEW = "mudbase sdk reset password"


def client(token=None):
    configuration = mudbase.Configuration(host=base, access_token=token)
    return mudbase.ApiClient(configuration)


def reset_token():
    """The token of the reset link emailed to `address` (the outbox keeps .eml files)."""
    for _ in range(200):
        for path in sorted(pathlib.Path(outbox).glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if address in message["To"] and "Reset your" in message["Subject"]:
                text = message.get_body(preferencelist=("plain",)).get_content()
                return re.search(r"token=(lka_[A-Za-z0-9_-]+)", text).group(1)
        time.sleep(0.1)
    sys.exit(f"no reset link to {address}")


auth = AuthenticationApi(client())
signed_in = auth.login_user(LoginRequest(email=address, password=password))
assert signed_in.token and signed_in.refresh_token and signed_in.user.email == address, signed_in
print("login_user: signed in")

answer = auth.request_password_reset(RequestPasswordResetRequest(email=address))
assert answer.message, answer
print("request_password_reset:", answer.message)
token = reset_token()
valid = auth.validate_password_reset_token(ValidatePasswordResetTokenRequest(token=token))
assert valid.valid is True, valid
print("validate_password_reset_token: valid")
done = auth.reset_password(token, ResetPasswordRequest(password=NEW))
print("reset_password:", done.message)
try:
    auth.reset_password(token, ResetPasswordRequest(password=NEW))
    sys.exit("a used reset link worked again")
except mudbase.ApiException as refused:
    assert refused.status == 400 and "INVALID_TOKEN" in refused.body, refused
    print("reset_password again: refused with INVALID_TOKEN")
try:
    auth.login_user(LoginRequest(email=address, password=password))
    sys.exit("the old password still works")
except mudbase.ApiException as refused:
    assert refused.status == 401, refused
    print("login_user with the old password: refused")

signed_in = auth.login_user(LoginRequest(email=address, password=NEW))
users = UsersApi(client(signed_in.token))
changed = users.change_password(ChangePasswordRequest(current_password=NEW, new_password=password))
print("change_password:", changed.message)
again = auth.login_user(LoginRequest(email=address, password=password))
assert again.token, again
print("login_user with the changed password: signed in")

# Two-step sign-in, with the SDK alone: its LoginRequest has no field for a code.
users = UsersApi(client(again.token))
setup = users.setup2_fa()
totp = pyotp.TOTP(setup.secret)
enabled = users.verify2_fa(Verify2FARequest(token=totp.at(server_time)))
print("setup2_fa, verify2_fa:", enabled.message)
limited = auth.login_user(LoginRequest(email=address, password=password))
try:
    UsersApi(client(limited.token)).get_current_user()
    sys.exit("the login's token opened the account before the second factor")
except mudbase.ApiException as refused:
    assert refused.status == 401, refused
    print("get_current_user before the second factor: refused")
completed = UsersApi(client(limited.token)).verify2_fa(Verify2FARequest(token=totp.at(server_time + 30)))
print("verify2_fa with the login's token:", completed.message)
me = UsersApi(client(limited.token)).get_current_user()
assert me.user.email == address and me.user.two_factor_enabled is True, me
print("get_current_user with the same token: signed in with 2FA")
