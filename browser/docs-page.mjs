// Opens /docs of a running Latchkey in Debian's headless Chromium and checks that
// every document renders: one entry per operation it lists, the error codes, and a
// "Try it" call that reaches the server. Keeps a screenshot of each document.
// Usage: node docs-page.mjs <base URL> <screenshot directory>
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import assert from "node:assert/strict";

const [base, artifacts] = process.argv.slice(2);
assert.ok(base && artifacts, "usage: node docs-page.mjs <base URL> <screenshot directory>");
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  // Failed loads are judged by the response check below; other console errors count.
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  // The page's own files and documents load; only the deliberate unauthenticated
  // "Try it" call and the browser's own favicon probe may fail.
  page.on("response", (response) => {
    const path = new URL(response.url()).pathname;
    if (response.status() >= 400 && path !== "/v1/me" && path !== "/favicon.ico") {
      problems.push(`${response.status()} for ${path}`);
    }
  });
  page.on("request", (request) => {
    if (!request.url().startsWith(base)) problems.push(`request outside the server: ${request.url()}`);
  });

  for (const [surface, path] of [["native", "/openapi.json"], ["prisme", "/openapi/prisme.json"],
    ["mudbase", "/openapi/mudbase.json"], ["lerian", "/openapi/lerian.json"],
    ["flashback", "/openapi/flashback.json"]]) {
    const api = await (await fetch(base + path)).json();
    const expected = Object.values(api.paths)
      .flatMap((item) => ["get", "post", "put", "patch", "delete"].filter((method) => item[method])).length;
    await page.goto(`${base}/docs#${surface}`);
    if (surface !== "native") await page.reload();
    await page.waitForSelector("body[data-rendered]");
    const rendered = Number(await page.getAttribute("body", "data-rendered"));
    assert.equal(rendered, expected, `${surface}: ${rendered} operations shown, the document has ${expected}`);
    assert.equal(await page.textContent("#intro h2 span"), `v${api.info.version}`);
    const title = await page.textContent("#intro h2");
    assert.ok(title.startsWith(api.info.title), `${surface}: the title is ${title}`);
    // The surface's error body is described once, under "error format".
    assert.ok(await page.$("#error-format + p + ul.schema li"), `${surface}: no error format`);
    // The first operation opens with its responses and a "Try it" form.
    await page.click("details.operation >> nth=0 >> summary");
    assert.ok(await page.isVisible("details.operation[open] .try button"), `${surface}: no Try it form`);
    await page.screenshot({ path: `${artifacts}/docs-${surface}.png`, fullPage: false });
    console.log(`${surface}: ${rendered} operations rendered`);
  }

  // Native: error codes are listed, and "Try it" on /healthz reaches the server.
  await page.goto(`${base}/docs#native`);
  await page.reload();
  await page.waitForSelector("body[data-rendered]");
  const codes = await page.$$eval("ul.codes li code", (nodes) => nodes.map((n) => n.textContent));
  assert.ok(codes.includes("invalid_code") && codes.includes("too_many_attempts"), `error codes: ${codes}`);
  const health = page.locator("details.operation", { has: page.locator(".path", { hasText: /^\/healthz$/ }) });
  await health.locator("summary").click();
  await health.locator(".try button").click();
  await page.waitForFunction(() => [...document.querySelectorAll(".result")].some((n) => n.textContent.startsWith("200")));
  const result = await health.locator(".result").textContent();
  assert.match(result, /^200 OK\n\{\n {2}"status": "ok"\n\}/);
  // A call that needs a token sends the one typed in the header's field.
  await page.fill("#bearer", "not-a-token");
  const me = page.locator("details.operation", { has: page.locator(".path", { hasText: /^\/v1\/me$/ }) });
  await me.locator("summary").click();
  await me.locator(".try button").click();
  await page.waitForFunction(() => [...document.querySelectorAll(".result")].some((n) => n.textContent.startsWith("401")));
  assert.match(await me.locator(".result").textContent(), /"code": "invalid_token"/);
  await me.screenshot({ path: `${artifacts}/docs-try-it.png` });
  console.log("native: error codes listed; Try it reached /healthz and /v1/me");
} finally {
  await browser.close();
}
assert.deepEqual(problems, [], problems.join("\n"));
console.log(`docs page: every document rendered; screenshots in ${artifacts}`);
