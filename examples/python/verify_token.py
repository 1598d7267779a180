"""How a Python app verifies a Latchkey access token (docs/INTEGRATION.md): the key set
from the discovery document, the signature, issuer, audience and expiry with PyJWT;
then whether a sensitive step needs the user to step up (`aal`, `auth_time`); then, for
a decision that must see a logout or revocation at once, introspection.

Usage: python3 verify_token.py <Latchkey URL> <audience> <access token> <API key>
Needs: pip install "PyJWT[crypto]"
"""

import json
import sys
import time
import urllib.parse
import urllib.request

import jwt

if len(sys.argv) != 5:
    sys.exit("usage: verify_token.py <Latchkey URL> <audience> <access token> <API key>")
base, audience, token, api_key = sys.argv[1:5]

# 1. Where the keys are: the discovery document names the issuer and the key set.
with urllib.request.urlopen(base + "/.well-known/openid-configuration") as response:
    discovery = json.load(response)
keys = jwt.PyJWKClient(discovery["jwks_uri"])

# 2. The signature (Ed25519), issuer, audience and expiry, checked locally.
signing_key = keys.get_signing_key_from_jwt(token)
claims = jwt.decode(
    token, signing_key.key, algorithms=["EdDSA"], audience=audience, issuer=discovery["issuer"]
)
print(f"signature: valid sub={claims['sub']} aal={claims['aal']} amr={','.join(claims['amr'])}")

# 3. A sensitive step wants a second factor proven in the last ten minutes.
recent = time.time() - claims["auth_time"] < 600
print("step-up:", "not needed" if claims["aal"] == "aal2" and recent else "needed")

# 4. The signature cannot see a session ended since the token was issued: ask.
request = urllib.request.Request(
    discovery["introspection_endpoint"],
    data=urllib.parse.urlencode({"token": token}).encode(),
    headers={"X-API-Key": api_key, "Content-Type": "application/x-www-form-urlencoded"},
)
with urllib.request.urlopen(request) as response:
    introspection = json.load(response)
print("introspection:", "active" if introspection["active"] else "inactive")
