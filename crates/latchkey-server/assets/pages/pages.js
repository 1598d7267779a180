// The hosted pages' only script: what a form cannot do alone. Passkeys (the WebAuthn
// calls, whose answers are posted in ordinary forms), countdowns, copying and
// downloading recovery codes, and keeping the query when switching language. Every
// page works without it except for passkeys.
"use strict";

const csrf = document.body.dataset.csrf || "";

async function postJson(path, body) {
  const reply = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrf-token": csrf },
    body: JSON.stringify(body || {}),
    credentials: "same-origin",
  });
  const answer = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    if (answer.location) window.location.assign(answer.location);
    throw new Error(answer.message || reply.statusText);
  }
  return answer;
}

function showError(form, message) {
  const slot = form.querySelector("[data-error]");
  if (!slot) return;
  slot.textContent = message;
  slot.hidden = !message;
}

function passkeysSupported() {
  return window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON;
}

// Fills the form's `credential` field with the browser's answer and posts the form.
function submitWith(form, credential, fields) {
  form.elements.credential.value = JSON.stringify(credential.toJSON());
  for (const [name, value] of Object.entries(fields || {})) form.elements[name].value = value;
  form.submit();
}

let conditional = null; // The pending autofill request, aborted before a button's own.

async function getCredential(options, mediation) {
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
  const request = { publicKey };
  if (mediation === "conditional") {
    conditional = new AbortController();
    request.mediation = "conditional";
    request.signal = conditional.signal;
  } else if (conditional) {
    conditional.abort();
    conditional = null;
  }
  return navigator.credentials.get(request);
}

// One passkey button: `start` gets options, then the answer is posted in the button's form.
function onPasskeyButton(button, start) {
  const form = button.closest("form");
  button.addEventListener("click", async () => {
    if (!passkeysSupported()) return showError(form, button.dataset.unsupported);
    showError(form, "");
    button.disabled = true;
    try {
      await start(form, button);
    } catch (error) {
      if (error.name !== "AbortError") showError(form, error.message);
      button.disabled = false;
    }
  });
}

document.querySelectorAll("[data-action=passkey-sign-in]").forEach((button) =>
  onPasskeyButton(button, async (form) => {
    const email = document.getElementById("email");
    const options = await postJson("/login/passkey/options", { email: email && email.value ? email.value : null });
    submitWith(form, await getCredential(options.request_options));
  }),
);

document.querySelectorAll("[data-action=passkey-verify]").forEach((button) =>
  onPasskeyButton(button, async (form) => {
    const options = await postJson("/login/verify/passkey/options", { factor_id: button.dataset.factor });
    submitWith(form, await getCredential(options.request_options));
  }),
);

document.querySelectorAll("[data-action=passkey-reset]").forEach((button) =>
  onPasskeyButton(button, async (form) => {
    const body = { token: form.elements.token.value, factor_id: button.dataset.factor };
    const options = await postJson("/reset-password/passkey/options", body);
    submitWith(form, await getCredential(options.request_options));
  }),
);

document.querySelectorAll("[data-action=passkey-reauth]").forEach((button) =>
  onPasskeyButton(button, async (form) => {
    const options = await postJson("/account/reauth/passkey/options", { factor_id: button.dataset.factor });
    submitWith(form, await getCredential(options.request_options));
  }),
);

document.querySelectorAll("[data-action=passkey-register]").forEach((button) =>
  onPasskeyButton(button, async (form) => {
    const started = await postJson("/account/passkeys/options", { name: form.elements.name.value || null });
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(started.creation_options);
    submitWith(form, await navigator.credentials.create({ publicKey }), { factor_id: started.factor_id });
  }),
);

// Passkey autofill on the sign-in page's email field (conditional mediation).
(async () => {
  const field = document.querySelector("[data-conditional-passkey]");
  const form = document.querySelector("[data-passkey-sign-in]");
  if (!field || !form || !passkeysSupported() || !PublicKeyCredential.isConditionalMediationAvailable) return;
  if (!(await PublicKeyCredential.isConditionalMediationAvailable())) return;
  try {
    const options = await postJson("/login/passkey/options", {});
    const credential = await getCredential(options.request_options, "conditional");
    if (credential) submitWith(form, credential);
  } catch (error) {
    if (error.name !== "AbortError") showError(form, error.message);
  }
})();

// Countdowns: a lockout's wait, or the time before a code can be sent again.
document.querySelectorAll("[data-countdown]").forEach((element) => {
  let left = Number(element.dataset.countdown);
  const isButton = element.tagName === "BUTTON";
  const tick = () => {
    if (left <= 0) {
      element.textContent = element.dataset.done;
      if (isButton) element.disabled = false;
      return;
    }
    element.textContent = element.dataset.template.replace("{seconds}", String(left));
    if (isButton) element.disabled = true;
    left -= 1;
    setTimeout(tick, 1000);
  };
  tick();
});

document.querySelectorAll("[data-copy]").forEach((button) =>
  button.addEventListener("click", async () => {
    const text = document.querySelector(button.dataset.copy).textContent.trim();
    await navigator.clipboard.writeText(text);
    button.textContent = button.dataset.copied;
  }),
);

document.querySelectorAll("[data-download]").forEach((button) =>
  button.addEventListener("click", () => {
    const text = document.querySelector(button.dataset.download).textContent;
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    link.download = button.dataset.filename;
    link.click();
    URL.revokeObjectURL(link.href);
  }),
);

// Switching language keeps the page's query (its `return_to`, its chosen factor).
document.querySelectorAll("a[data-lang]").forEach((link) => {
  const url = new URL(window.location.href);
  url.searchParams.set("lang", link.dataset.lang);
  link.href = url.pathname + url.search;
});
