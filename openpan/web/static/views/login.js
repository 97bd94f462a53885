import { call } from "../api.js";
import { t } from "../i18n.js";
import { html, useState } from "../ui.js";

export function Login({ onSignedIn }) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    setBusy(true);
    setError("");
    try {
      onSignedIn(await call("/web/api/login", { body: { name: form.get("name"), password: form.get("password") } }));
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  }
  return html`<main class="login" id="main">
    <h1>${t("signInTitle")}</h1>
    <form onSubmit=${submit} class="card">
      <label for="login-name">${t("userName")}</label>
      <input id="login-name" name="name" autocomplete="username" required autofocus />
      <label for="login-password">${t("password")}</label>
      <input id="login-password" name="password" type="password" autocomplete="current-password" required />
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <button class="primary" type="submit" disabled=${busy}>${t("signIn")}</button>
    </form>
    <p class="muted small">${t("signInHint")}</p>
  </main>`;
}
