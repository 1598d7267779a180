// Passkeys in a real browser: Debian's headless Chromium with the DevTools WebAuthn
// virtual authenticator (CTAP2, resident keys, user verification), against a running
// Latchkey whose public URL is on localhost. In the page, as an app's own script
// would: register a passkey as a second factor, log in with the password and the
// passkey, sign in with the passkey alone without typing an address, and check the
// refusals (the same answer twice; a clone whose signature counter went backwards; an
// authenticator that did not verify the user); then, as a Flashback client, set a
// passkey up and finish a login with it through Flashback's endpoints only.
// Usage: node passkeys.mjs <base URL on localhost>
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const [base] = process.argv.slice(2);
assert.ok(base && new URL(base).hostname === "localhost", "usage: node passkeys.mjs http://localhost:<port>");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  // Any page of the service's origin will do: the ceremonies run in its script.
  await page.goto(`${base}/healthz`);
  const devtools = await context.newCDPSession(page);
  await devtools.send("WebAuthn.enable");
  const { authenticatorId } = await devtools.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true,
    },
  });

  // Helpers inside the page: the API, and the WebAuthn calls as an app makes them.
  await page.evaluate(() => {
    window.api = async (path, body, token) => {
      const headers = { "content-type": "application/json" };
      if (token) headers.authorization = `Bearer ${token}`;
      const reply = await fetch(path, { method: "POST", headers, body: JSON.stringify(body ?? {}) });
      return { status: reply.status, body: await reply.json().catch(() => null) };
    };
    window.create = async (options) =>
      (await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) }))
        .toJSON();
    window.get = async (options, tamper) => {
      const parsed = PublicKeyCredential.parseRequestOptionsFromJSON(options);
      if (tamper) Object.assign(parsed, tamper);
      return (await navigator.credentials.get({ publicKey: parsed })).toJSON();
    };
  });

  const email = `passkey-${Date.now()}@example.com`;
  const password = "browser horse battery staple";
  const registered = await page.evaluate(async ({ email, password }) => {
    await api("/v1/auth/signup", { email, password });
    const login = await api("/v1/auth/login", { email, password });
    const token = login.body.access_token;
    const created = await api("/v1/me/factors", { type: "webauthn", friendly_name: "this browser" }, token);
    const credential = await create(created.body.webauthn.creation_options);
    const confirmed = await api(`/v1/me/factors/${created.body.id}/verify`, { credential }, token);
    return { created: created.status, confirmed, factorId: created.body.id };
  }, { email, password });
  assert.equal(registered.created, 201);
  assert.equal(registered.confirmed.status, 200, JSON.stringify(registered.confirmed.body));
  assert.equal(registered.confirmed.body.factor.status, "active");
  const { credentials } = await devtools.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(credentials.length, 1);
  assert.equal(credentials[0].isResidentCredential, true, "a discoverable credential was asked for and kept");
  console.log("registered a passkey as a second factor");

  const second = await page.evaluate(async ({ email, password, factorId }) => {
    const login = await api("/v1/auth/login", { email, password });
    const mfa_token = login.body.mfa_token;
    const challenge = await api("/v1/auth/mfa/challenge", { mfa_token, factor_id: factorId });
    const credential = await get(challenge.body.request_options);
    const verified = await api("/v1/auth/mfa/verify", { mfa_token, factor_id: factorId, credential });
    const me = await (await fetch("/v1/me", { headers: { authorization: `Bearer ${verified.body.access_token}` } })).json();
    const replay = await api("/v1/auth/mfa/verify", { mfa_token, factor_id: factorId, credential });
    return { mfa: login.body.mfa_required, verified: verified.status, session: me.session, replay };
  }, { email, password, factorId: registered.factorId });
  assert.equal(second.mfa, true);
  assert.equal(second.verified, 200);
  assert.equal(second.session.aal, "aal2");
  assert.deepEqual(second.session.amr, ["pwd", "hwk"]);
  assert.equal(second.replay.status, 401, "the login's mfa_token is spent");
  console.log("logged in with the password and the passkey");

  const alone = await page.evaluate(async () => {
    const options = await api("/v1/auth/passkey/options", {});
    const credential = await get(options.body.request_options);
    const signedIn = await api("/v1/auth/passkey/login", { credential });
    const again = await api("/v1/auth/passkey/login", { credential });
    return { mediation: options.body.mediation, signedIn, again };
  });
  assert.equal(alone.mediation, "conditional");
  assert.equal(alone.signedIn.status, 200, JSON.stringify(alone.signedIn.body));
  assert.equal(alone.signedIn.body.user.email, email);
  assert.equal(alone.signedIn.body.aal, "aal2");
  assert.equal(alone.again.status, 422);
  assert.equal(alone.again.body.error.details.reason, "unknown_challenge");
  console.log("signed in with the passkey alone, no address typed");

  // A clone of the authenticator, whose signature counter is behind the original's:
  // refused, and audited as a possibly cloned credential.
  const [used] = (await devtools.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
  assert.ok(used.signCount >= 3, `the counter moved with each use: ${used.signCount}`);
  await devtools.send("WebAuthn.removeCredential", { authenticatorId, credentialId: used.credentialId });
  await devtools.send("WebAuthn.addCredential", { authenticatorId, credential: { ...used, signCount: 0 } });
  const cloned = await page.evaluate(async () => {
    const options = await api("/v1/auth/passkey/options", {});
    return api("/v1/auth/passkey/login", { credential: await get(options.body.request_options) });
  });
  assert.equal(cloned.status, 422, JSON.stringify(cloned.body));
  assert.equal(cloned.body.error.details.reason, "counter_regressed");
  console.log("refused a cloned authenticator whose counter went backwards");

  // An authenticator that does not verify the user, asked (by a tampered page) not to:
  // the server requires verification and refuses the answer.
  await devtools.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified: false });
  const unverified = await page.evaluate(async () => {
    const options = await api("/v1/auth/passkey/options", {});
    const credential = await get(options.body.request_options, { userVerification: "discouraged" });
    return api("/v1/auth/passkey/login", { credential });
  });
  assert.equal(unverified.status, 422, JSON.stringify(unverified.body));
  assert.equal(unverified.body.error.details.reason, "user_not_verified");
  console.log("refused an answer without user verification");

  // A Flashback client, using only Flashback's endpoints: set a passkey up from a
  // session, then finish a login with it.
  await devtools.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified: true });
  const flashback = await page.evaluate(async ({ password }) => {
    const email = `flashback-${Date.now()}@example.com`;
    await api("/v1/auth/signup", { email, password });
    const first = await api("/user/login", { email, password, deviceInfo: { name: "Chromium" } });
    const token = first.body.accessToken;
    const setup = await api("/mfa/setup", { mfaType: "PASSKEY", deviceInfo: { name: "Chromium" } }, token);
    const credential = await create(setup.body.data.publicKey);
    const completed = await api("/mfa/passkey/complete-registration",
      { credential, challenge: setup.body.data.challenge }, token);
    const login = await api("/user/login", { email, password });
    const limited = login.body.accessToken;
    const options = await api("/mfa/passkey/auth-options", {}, limited);
    const assertion = await get(options.body.data);
    const verified = await api("/mfa/verify-login", { mfaType: "PASSKEY", credential: assertion }, limited);
    const status = await (await fetch("/mfa/status",
      { headers: { authorization: `Bearer ${verified.body.fullAccessToken}` } })).json();
    return { first: first.body.mfaRequired, setup: setup.status, completed, login: login.body.mfaRequired, verified, status };
  }, { password });
  assert.equal(flashback.first, false);
  assert.equal(flashback.setup, 200);
  assert.deepEqual(flashback.completed.body, { success: true, message: "Passkey registration completed" });
  assert.equal(flashback.login, true, "the next login's token is limited");
  assert.equal(flashback.verified.status, 200, JSON.stringify(flashback.verified.body));
  assert.equal(flashback.status.data.sessionVerified, true);
  assert.deepEqual(flashback.status.data.enabledMethods, ["PASSKEY"]);
  console.log("a Flashback client set a passkey up and finished a login with it");
  assert.deepEqual(errors, []);
} finally {
  await browser.close();
}
