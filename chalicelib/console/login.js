// The sign-in page: a Kiln JWT pasted, checked against the API before it is kept.

import { api, setToken } from "./api.js";
import { banner, h } from "./ui.js";

export async function renderLogin(main, context, notice) {
  const input = h("textarea#token", {
    name: "token",
    testid: "token-input",
    rows: 4,
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "eyJhbGciOiJSUzI1NiIs…",
    "aria-describedby": "token-help",
  });
  const remember = h("input#remember", { type: "checkbox", name: "remember", testid: "remember" });
  const status = h("div.login-status", { "aria-live": "polite" });
  if (notice) status.append(banner(notice, { kind: "warn", testid: "login-notice" }));
  const submit = h("button.btn.btn-primary#sign-in", { type: "submit", testid: "sign-in" }, "Sign in");
  const form = h(
    "form.login-card",
    { testid: "login-form", novalidate: true },
    h("div.login-brand", h("img", { src: "./favicon.svg", alt: "", width: 40, height: 40 }), h("div", h("h1", "Kiln console"), h("p.muted", "Builds, images, sources and operators in one place."))),
    status,
    h("label.field", { for: "token" }, h("span.field-label", "Access token")),
    input,
    h(
      "p.help#token-help",
      "A Kiln bearer token (JWT). On a local stack: ",
      h("code", "jq -r .tokens.user .kiln/stack.json"),
      " or ",
      h("code", "make token"),
      ".",
    ),
    h("label.check", { for: "remember" }, remember, " Keep me signed in on this device"),
    h("div.form-actions", submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim().replace(/^bearer\s+/i, "");
    status.replaceChildren();
    if (!token) {
      status.append(banner("Paste a token first."));
      input.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Checking…";
    try {
      await api("/kiln/v1/builds?limit=1", { token, quiet: true, signal: context.signal });
      setToken(token, remember.checked);
      const next = context.query.get("next");
      window.location.hash = next && next.startsWith("#/") && !next.startsWith("#/login") ? next : "#/builds";
    } catch (err) {
      if (err.name === "AbortError") return;
      const why = err.status === 401 ? `Kiln refused this token: ${err.message}` : err.message;
      status.append(banner(why, { testid: "login-error" }));
      submit.disabled = false;
      submit.textContent = "Sign in";
      input.focus();
    }
  });
  main.append(h("div.login-page", form));
  input.focus();
}
