// The hosted pages in a real browser: Debian's headless Chromium, a person using only
// the pages (keyboard for the first sign-in), oathtool as their authenticator app, and
// the DevTools virtual authenticator as their passkey. Sign up, sign in, add an authenticator
// app from the secret shown, sign out and in with its code, make new recovery codes and
// sign in with one (remembering the device), add a passkey, sign in with it alone,
// confirm it's you with it before removing a factor, go back to an app with an
// exchange code, reset a forgotten password from the emailed link with the passkey as
// its second factor, and the refusals: a return_to elsewhere, a POST without its CSRF
// token or from another origin, and the lockout's countdown. Saves screenshots of every
// page at desktop and phone widths.
// Usage: OUTBOX=<the server's outbox directory> node pages.mjs <base URL on localhost>
//        <allowed app origin, whose port it serves>
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync } from "node:fs";
import { createServer } from "node:http";

const [base, app] = process.argv.slice(2);
assert.ok(base && app, "usage: node pages.mjs http://localhost:<port> http://localhost:<app port>");
const shots = process.env.SCREENSHOTS || "/tmp/latchkey-page-screens";
const outbox = process.env.OUTBOX;
assert.ok(outbox, "OUTBOX names the server's outbox directory, where emails land");

// The link in the newest email to `to` whose subject has `subject` (the outbox keeps
// each message as quoted-printable .eml).
const emailedLink = async (to, subject) => {
  for (let attempt = 0; attempt < 100; attempt++) {
    const found = readdirSync(outbox)
      .filter((name) => name.endsWith(".eml"))
      .map((name) => readFileSync(`${outbox}/${name}`, "utf8").replace(/=\r?\n/g, "").replace(/=3D/g, "="))
      .filter((text) => text.includes(`To: ${to}`) && new RegExp(`^Subject: .*${subject}`, "m").test(text));
    if (found.length) return found[0].match(/https?:\/\/[^\s"<]+/)[0];
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no email to ${to} about ${subject}`);
};
mkdirSync(shots, { recursive: true });

// The authenticator app: oathtool, `steps` time steps from now (the server accepts the
// next one, and refuses a step it has seen).
const totp = (secret, steps = 0) =>
  execFileSync("oathtool", ["--totp", "-b", "-N", `@${Math.floor(Date.now() / 1000) + 30 * steps}`, secret])
    .toString()
    .trim();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
const watch = (page) => {
  page.on("pageerror", (error) => problems.push(`script error: ${error.message}`));
  page.on("console", (message) => {
    // A refused request's status is logged too; a policy violation is what counts.
    if (message.type() === "error" && /Content.Security.Policy|Refused/i.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
};
const shoot = async (page, name) => {
  for (const [width, height] of [[1280, 900], [390, 844]]) {
    await page.setViewportSize({ width, height });
    await page.screenshot({ path: `${shots}/${name}-${width}.png`, fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 900 });
};
const heading = (page) => page.locator("h1").innerText();

try {
  const context = await browser.newContext({ locale: "en-GB", acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  watch(page);
  const email = `pages-${Date.now()}@example.com`;
  const password = "browser horse battery staple";
  // Sign up on the page (sign-up is open in this configuration).
  await page.goto(`${base}/login`);
  await page.getByRole("link", { name: "Create an account" }).click();
  await page.getByLabel("Email address").fill(email);
  await page.getByLabel("Password").fill("password");
  await page.getByRole("button", { name: "Create the account" }).click();
  assert.match(await page.getByRole("alert").innerText(), /Choose another password/, "a common password is refused");
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Create the account" }).click();
  await page.waitForURL(`${base}/login?notice=signed_up`);
  console.log("signed up on the page");

  // Forms only act when they come from our page with its token.
  await page.goto(`${base}/login`);
  const token = await page.locator("input[name=csrf]").first().inputValue();
  const noToken = await page.request.post(`${base}/login`, { form: { email, password } });
  assert.equal(noToken.status(), 403, "a POST without the CSRF token is refused");
  const elsewhere = await page.request.post(`${base}/login`, {
    form: { csrf: token, email, password }, headers: { origin: "https://evil.example" }, maxRedirects: 0,
  });
  assert.equal(elsewhere.status(), 403, "a POST from another origin is refused");
  const wrongToken = await page.request.post(`${base}/login`, { form: { csrf: `${token}x`, email, password } });
  assert.equal(wrongToken.status(), 403);
  console.log("refused POSTs without the CSRF token or from another origin");

  // The first sign-in with the keyboard alone.
  await shoot(page, "login");
  await page.locator("body").focus();
  for (let i = 0; i < 12 && (await page.evaluate(() => document.activeElement.id)) !== "email"; i++) {
    await page.keyboard.press("Tab");
  }
  assert.equal(await page.evaluate(() => document.activeElement.id), "email", "Tab reaches the email field");
  await page.keyboard.type(email);
  await page.keyboard.press("Tab");
  await page.keyboard.type(password);
  await page.keyboard.press("Enter");
  await page.waitForURL(`${base}/account/security`);
  assert.equal(await heading(page), "Security settings");
  const cookies = await context.cookies(base);
  const session = cookies.find((c) => c.name === "latchkey_session");
  assert.ok(session && session.httpOnly && session.sameSite === "Lax", JSON.stringify(cookies));
  await shoot(page, "security-new");
  console.log("signed in with the keyboard alone");

  // An authenticator app, from the secret the page shows.
  await page.getByRole("button", { name: "Add an authenticator app" }).click();
  await page.waitForURL(`${base}/account/factors/totp`);
  const secret = (await page.locator("#secret").innerText()).trim();
  assert.match(await page.locator("img.qr").getAttribute("src"), /^data:image\/png;base64,/);
  await shoot(page, "setup-totp");
  await page.getByLabel("The code it shows now").fill(totp(secret));
  await page.getByRole("button", { name: "Confirm" }).click();
  assert.equal(await heading(page), "Your recovery codes");
  const firstCodes = await page.locator("#recovery-codes code").allInnerTexts();
  assert.equal(firstCodes.length, 10);
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Download as a text file" }).click(),
  ]);
  assert.equal(download.suggestedFilename(), "recovery-codes.txt");
  assert.deepEqual(readFileSync(await download.path(), "utf8").trim().split("\n"), firstCodes);
  await shoot(page, "recovery-codes");
  await page.getByRole("link", { name: "I have saved them" }).click();
  assert.match(await page.locator("#factors").innerText(), /Authenticator app/);
  console.log("added an authenticator app from the secret on the page; downloaded the recovery codes");

  // With a passkey on the authenticator, the sign-in page's autofill request would
  // answer by itself: the authenticator only answers when a step means it to.
  let authenticator = null;
  const presence = async (enabled) => {
    if (authenticator) await authenticator.devtools.send("WebAuthn.setAutomaticPresenceSimulation",
      { authenticatorId: authenticator.authenticatorId, enabled });
  };
  const signOut = async () => {
    await presence(false);
    await page.getByRole("button", { name: "Sign out" }).first().click();
    await page.waitForURL(`${base}/login?notice=signed_out`);
  };
  const signIn = async (target = `${base}/login`) => {
    await presence(false);
    await page.goto(target);
    await page.getByLabel("Email address").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.waitForURL((url) => url.pathname !== "/login");
    await presence(true);
  };

  // Out, and in again with the app's code.
  await signOut();
  await signIn();
  await page.waitForURL(/\/login\/verify/);
  await shoot(page, "verify-totp");
  await page.getByLabel("Code from your authenticator app").fill(totp(secret, 1));
  await page.getByRole("button", { name: "Continue" }).click();
  await page.waitForURL(`${base}/account/security`);
  console.log("signed in with the password and the authenticator app's code");

  // New recovery codes (the sign-in just now is recent enough).
  await page.getByRole("button", { name: "Make new recovery codes" }).click();
  const codes = await page.locator("#recovery-codes code").allInnerTexts();
  assert.equal(codes.length, 10);
  assert.ok(!codes.some((c) => firstCodes.includes(c)), "a new set");
  await page.getByRole("link", { name: "I have saved them" }).click();

  // A passkey, on the virtual authenticator.
  const devtools = await context.newCDPSession(page);
  await devtools.send("WebAuthn.enable");
  const { authenticatorId } = await devtools.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true },
  });
  authenticator = { devtools, authenticatorId };
  await page.getByLabel("Name for the passkey (optional)").fill("this laptop");
  await page.getByRole("button", { name: "Add a passkey" }).click();
  await page.waitForURL(`${base}/account/security?done=factor_added`);
  assert.match(await page.locator("#factors").innerText(), /Passkey · this laptop/);
  const { credentials } = await devtools.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(credentials.length, 1);
  console.log("made new recovery codes and added a passkey");

  // In with a recovery code, remembering this device.
  await signOut();
  await signIn();
  await page.waitForURL(/\/login\/verify/);
  await page.getByRole("button", { name: "Recovery code" }).click();
  await page.getByLabel("One of your recovery codes").fill(codes[0]);
  await page.getByLabel(/Remember this device/).check();
  await page.getByRole("button", { name: "Continue" }).click();
  await page.waitForURL(`${base}/account/security`);
  assert.match(await page.locator("#codes-left").innerText(), /9/);
  console.log("signed in with a recovery code and remembered the device");

  // In with the passkey alone, no address typed: from the email field's autofill (the
  // conditional request the page makes as it opens), then, in a browser without
  // autofill, with the button.
  await signOut();
  await presence(true);
  await page.goto(`${base}/login`);
  await page.waitForURL(`${base}/account/security`);
  await page.addInitScript(() => {
    PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
  await signOut();
  await presence(true);
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  await page.waitForURL(`${base}/account/security`);
  console.log("signed in with the passkey alone: from the autofill, and with its button");

  // The remembered device skips the second step; removing a factor then needs it.
  await signOut();
  await signIn();
  await page.waitForURL(`${base}/account/security`);
  const totpRow = page.locator("#factors li", { hasText: "Authenticator app" });
  await totpRow.getByRole("button", { name: "Remove" }).click();
  await page.waitForURL(`${base}/account/reauth`);
  await shoot(page, "reauth");
  await page.getByRole("button", { name: "Passkey · this laptop" }).click();
  await page.getByRole("button", { name: "Use my passkey" }).click();
  await page.waitForURL(`${base}/account/security?done=confirmed`);
  await page.locator("#factors li", { hasText: "Authenticator app" }).getByRole("button", { name: "Remove" }).click();
  await page.waitForURL(`${base}/account/security?done=factor_removed`);
  assert.doesNotMatch(await page.locator("#factors").innerText(), /Authenticator app/);
  console.log("removed a factor after confirming with the passkey");

  // Back to an app: the POST's redirect carries a one-time code the app exchanges.
  const appServer = createServer((_, response) => {
    response.writeHead(200, { "content-type": "text/html" });
    response.end("<!doctype html><title>app</title><h1>The app</h1>");
  });
  await new Promise((resolve) => appServer.listen(Number(new URL(app).port), "127.0.0.1", resolve));
  await signOut();
  await signIn(`${base}/login?return_to=${encodeURIComponent(`${app}/callback?state=abc`)}`);
  await page.waitForURL(/\/login\/verify/);
  const [posted] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${base}/login/verify` && r.request().method() === "POST"),
    page.getByRole("button", { name: "Use my passkey" }).click(),
  ]);
  assert.equal(posted.status(), 303);
  const location = new URL(posted.headers().location);
  assert.equal(`${location.origin}${location.pathname}`, `${app}/callback`);
  assert.equal(location.searchParams.get("state"), "abc");
  await page.waitForURL(`${app}/callback?**`);
  assert.equal(await heading(page), "The app", "the browser followed the redirect (form-action allows it)");
  const code = location.searchParams.get("code");
  const exchanged = await page.request.post(`${base}/v1/auth/exchange`, { data: { code } });
  assert.equal(exchanged.status(), 200);
  const tokens = await exchanged.json();
  const me = await page.request.get(`${base}/v1/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  assert.equal(me.status(), 200);
  assert.equal((await me.json()).email, email);
  assert.equal(tokens.aal, "aal2");
  const again = await page.request.post(`${base}/v1/auth/exchange`, { data: { code } });
  assert.equal(again.status(), 401, "a code works once");
  appServer.close();
  console.log("went back to the app, which exchanged the code for tokens once");

  const refused = await page.goto(`${base}/login?return_to=${encodeURIComponent("https://evil.example/steal")}`);
  assert.equal(refused.status(), 400);
  assert.equal(await heading(page), "This sign-in link is not allowed");
  await shoot(page, "return-to-refused");
  console.log("refused a return_to outside the allowed URLs");

  // A forgotten password: the link from the email, the new password, and the passkey
  // as the second factor the reset needs.
  await page.goto(`${base}/login`);
  await page.getByRole("link", { name: "Forgot your password?" }).click();
  await page.getByLabel("Email address").fill(email);
  await page.getByRole("button", { name: "Email me a link" }).click();
  assert.match(await page.getByRole("status").innerText(), /If an account uses this address/);
  const resetLink = await emailedLink(email, "Reset your");
  assert.ok(resetLink.startsWith(`${base}/reset-password?token=lka_`), resetLink);
  await page.goto(resetLink);
  assert.equal(await heading(page), "Choose a new password");
  await shoot(page, "reset-password");
  await page.getByLabel("New password").fill("a brand new browser password");
  await presence(true);
  await page.getByRole("button", { name: "Use my passkey and set the password" }).click();
  await page.waitForURL(`${base}/reset-password`);
  assert.equal(await heading(page), "Your password is changed");
  const gone = await page.goto(resetLink);
  assert.equal(gone.status(), 410, "the link works once");
  const oldPassword = await page.request.post(`${base}/v1/auth/login`, { data: { email, password } });
  assert.equal(oldPassword.status(), 401);
  const newPassword = await page.request.post(`${base}/v1/auth/login`,
    { data: { email, password: "a brand new browser password" } });
  assert.equal((await newPassword.json()).mfa_required, true, "the second factor is still asked for");
  console.log("reset a forgotten password from the emailed link, with the passkey as its second factor");

  // The lockout's wait as a countdown, for someone guessing codes.
  const other = `locked-${Date.now()}@example.com`;
  await page.request.post(`${base}/v1/auth/signup`, { data: { email: other, password } });
  const login = await (await page.request.post(`${base}/v1/auth/login`, { data: { email: other, password } })).json();
  const auth = { authorization: `Bearer ${login.access_token}` };
  const factor = await (await page.request.post(`${base}/v1/me/factors`, { data: { type: "totp" }, headers: auth })).json();
  const otherSecret = new URL(factor.totp.otpauth_uri).searchParams.get("secret");
  const verified = await page.request.post(`${base}/v1/me/factors/${factor.id}/verify`,
    { data: { code: totp(otherSecret) }, headers: auth });
  assert.equal(verified.status(), 200);
  const guesser = await browser.newContext({ locale: "en-GB" });
  const guessing = await guesser.newPage();
  watch(guessing);
  await guessing.goto(`${base}/login`);
  await guessing.getByLabel("Email address").fill(other);
  await guessing.getByLabel("Password").fill(password);
  await guessing.getByRole("button", { name: "Sign in", exact: true }).click();
  await guessing.waitForURL(/\/login\/verify/);
  const wrong = String((Number(totp(otherSecret)) + 500000) % 1000000).padStart(6, "0");
  let status = 0;
  for (let attempt = 0; attempt < 8 && status !== 429; attempt++) {
    await guessing.getByLabel("Code from your authenticator app").fill(wrong);
    const [answer] = await Promise.all([
      guessing.waitForResponse((r) => r.url() === `${base}/login/verify` && r.request().method() === "POST"),
      guessing.getByRole("button", { name: "Continue" }).click(),
    ]);
    status = answer.status();
  }
  assert.equal(status, 429, "guessing is slowed down");
  const timer = guessing.getByRole("timer");
  assert.match(await timer.innerText(), /Try again in \d+ s\./);
  const before = Number((await timer.innerText()).match(/\d+/)[0]);
  await guessing.waitForTimeout(2100);
  assert.ok(Number((await timer.innerText()).match(/\d+/)[0]) < before, "the countdown counts down");
  await shoot(guessing, "lockout");
  console.log("showed the lockout's wait as a countdown");

  // Another language: from the browser's preference, or chosen (and remembered).
  const french = await browser.newContext({ locale: "fr-FR" });
  const frenchPage = await french.newPage();
  watch(frenchPage);
  await frenchPage.goto(`${base}/login`);
  assert.equal(await heading(frenchPage), "Connexion");
  await shoot(frenchPage, "login-fr");
  await frenchPage.getByRole("link", { name: "English" }).click();
  assert.equal(await heading(frenchPage), "Sign in");
  await frenchPage.goto(`${base}/login`);
  assert.equal(await heading(frenchPage), "Sign in", "the choice is remembered");
  console.log("spoke French to a French browser, and English once asked");

  assert.deepEqual(problems, [], "no script errors or policy violations");
  console.log(`screenshots in ${shots}`);
} finally {
  await browser.close();
}
