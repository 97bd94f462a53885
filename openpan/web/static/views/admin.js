// Administration (the first user): list, add and disable users, set VIP. The server checks
// the role on every one of these calls; this page only shows what it answers.
import { call } from "../api.js";
import { t } from "../i18n.js";
import { CopyField, html, useEffect, useState } from "../ui.js";

export function Admin() {
  const [users, setUsers] = useState(null);
  const [error, setError] = useState("");
  const [created, setCreated] = useState(null);
  const [addError, setAddError] = useState("");

  const load = () => call("/web/api/admin/users").then((r) => { setUsers(r.users); setError(""); }, (err) => setError(err.message));
  useEffect(() => { load(); }, []);

  async function add(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    try {
      setCreated(await call("/web/api/admin/users/add", {
        body: { name: form.get("name").trim(), password: form.get("password"), vip: form.get("vip") === "on" },
      }));
      setAddError("");
      event.target.reset();
      load();
    } catch (err) {
      setAddError(err.message);
    }
  }

  async function change(user, fields) {
    try {
      await call("/web/api/admin/users/update", { body: { name: user.name, ...fields } });
    } catch (err) {
      setError(err.message);
    }
    load();
  }

  if (error && users === null) return html`<main id="main" class="page"><h1>${t("admin")}</h1><p class="error" role="alert">${error}</p></main>`;
  return html`<main id="main" class="page">
    <h1>${t("admin")}</h1>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${users === null ? html`<p>${t("loading")}</p>` : html`<table class="files users">
      <thead><tr><th scope="col">${t("userName")}</th><th scope="col" class="wide">clientID</th><th scope="col">VIP</th>
        <th scope="col">${t("state")}</th><th scope="col" class="wide">${t("created")}</th></tr></thead>
      <tbody>${users.map((u) => html`<tr key=${u.name}>
        <td>${u.name}${u.isAdmin ? html` <span class="badge">${t("administrator")}</span>` : ""}</td>
        <td class="wide mono">${u.clientID}</td>
        <td><input type="checkbox" checked=${u.vip} aria-label=${t("vipOf", u.name)} onChange=${() => change(u, { vip: !u.vip })} /></td>
        <td>${u.isAdmin ? t("enabled") : html`<button type="button" class=${u.disabled ? "" : "danger"}
          onClick=${() => change(u, { disabled: !u.disabled })}>${u.disabled ? t("enable") : t("disable")}</button>
          ${u.disabled ? html` <span class="badge">${t("disabled")}</span>` : ""}`}</td>
        <td class="wide">${u.createAt}</td>
      </tr>`)}</tbody>
    </table>`}
    <section class="card narrow" aria-labelledby="add-heading">
      <h2 id="add-heading">${t("addUser")}</h2>
      <form onSubmit=${add}>
        <label for="new-name">${t("userName")}</label>
        <input id="new-name" name="name" required maxlength="64" pattern="[A-Za-z0-9_.@\\-]+" />
        <label for="new-password">${t("password")}</label>
        <input id="new-password" name="password" type="password" autocomplete="new-password" minlength="8" required />
        <label class="check"><input type="checkbox" name="vip" /> VIP</label>
        ${addError && html`<p class="error" role="alert">${addError}</p>`}
        <button type="submit" class="primary">${t("addUser")}</button>
      </form>
      ${created && html`<div class="created">
        <p>${t("userCreated", created.name)}</p>
        <${CopyField} id="new-client-id" label="clientID" value=${created.clientID} />
        <${CopyField} id="new-client-secret" label="clientSecret" value=${created.clientSecret} />
        <p class="warn">${t("secretOnce")}</p>
      </div>`}
    </section>
  </main>`;
}
