// How a Node app verifies a Latchkey access token (docs/INTEGRATION.md): the key set
// from the discovery document, the signature, issuer, audience and expiry with `jose`;
// then whether a sensitive step needs the user to step up (`aal`, `auth_time`); then,
// for a decision that must see a logout or revocation at once, introspection.
// Usage: node verify-token.mjs <Latchkey URL> <audience> <access token> <API key>
import { createRemoteJWKSet, jwtVerify } from "jose";

const [base, audience, token, apiKey] = process.argv.slice(2);
if (!token || !apiKey) {
  console.error("usage: node verify-token.mjs <Latchkey URL> <audience> <access token> <API key>");
  process.exit(2);
}

// 1. Where the keys are: the discovery document names the issuer and the key set.
const discovery = await (await fetch(`${base}/.well-known/openid-configuration`)).json();
const keys = createRemoteJWKSet(new URL(discovery.jwks_uri));

// 2. The signature (Ed25519), issuer, audience and expiry, checked locally.
const { payload } = await jwtVerify(token, keys, {
  issuer: discovery.issuer,
  audience,
  algorithms: ["EdDSA"],
});
console.log(`signature: valid sub=${payload.sub} aal=${payload.aal} amr=${payload.amr.join(",")}`);

// 3. A sensitive step (changing a payout account, say) wants a second factor proven in
//    the last ten minutes; otherwise send the user to step up.
const recent = Date.now() / 1000 - payload.auth_time < 600;
console.log(`step-up: ${payload.aal === "aal2" && recent ? "not needed" : "needed"}`);

// 4. The signature cannot see a session ended since the token was issued: ask.
const reply = await fetch(discovery.introspection_endpoint, {
  method: "POST",
  headers: { "x-api-key": apiKey, "content-type": "application/x-www-form-urlencoded" },
  body: new URLSearchParams({ token }),
});
const introspection = await reply.json();
console.log(`introspection: ${introspection.active ? "active" : "inactive"}`);
