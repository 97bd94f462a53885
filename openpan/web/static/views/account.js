// The signed-in user's account: API credentials, usage, link settings, password, shares.
import { call } from "../api.js";
import { formatSize, t } from "../i18n.js";
import { Confirm, CopyField, html, notify, useEffect, useState } from "../ui.js";

export function Account({ me, onChanged, onSignedOut }) {
  const [info, setInfo] = useState(null);
  const [secret, setSecret] = useState("");
  const [confirm, setConfirm] = useState(false);
  const [shares, setShares] = useState([]);
  const [settingsError, setSettingsError] = useState("");
  const [passwordError, setPasswordError] = useState("");

  const loadShares = () => call("/web/api/shares").then((s) => setShares(s.shares), () => {});
  useEffect(() => {
    call("/api/v1/user/info").then(setInfo, () => {});
    loadShares();
  }, []);

  async function rotate() {
    setConfirm(false);
    const creds = await call("/web/api/account/secret", { body: {} });
    setSecret(creds.clientSecret);
  }

  async function saveSettings(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    const body = {
      customDomain: form.get("customDomain").trim(),
      refererAllow: form.get("refererAllow").trim(),
      refererAllowEmpty: form.get("refererAllowEmpty") === "on",
    };
    if (form.get("linkSecretMode") === "set") body.linkSecret = form.get("linkSecret");
    if (form.get("linkSecretMode") === "off") body.linkSecret = "";
    try {
      onChanged(await call("/web/api/account/settings", { body }));
      setSettingsError("");
      notify(t("saved"));
    } catch (err) {
      setSettingsError(err.message);
    }
  }

  async function changePassword(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    if (form.get("password") !== form.get("again")) return setPasswordError(t("passwordsDiffer"));
    try {
      await call("/web/api/account/password", { body: { current: form.get("current"), password: form.get("password") } });
      onSignedOut();
    } catch (err) {
      setPasswordError(err.message);
    }
  }

  async function revoke(token) {
    await call("/web/api/shares/revoke", { body: { token } });
    notify(t("shareRevoked"));
    loadShares();
  }

  const limit = info && info.downloadTrafficLimit;
  return html`<main id="main" class="page narrow">
    <h1>${t("account")}</h1>
    <section class="card" aria-labelledby="api-heading">
      <h2 id="api-heading">${t("apiCredentials")}</h2>
      <${CopyField} id="client-id" label="clientID" value=${me.clientID} />
      ${secret
        ? html`<${CopyField} id="client-secret" label="clientSecret" value=${secret} /><p class="warn">${t("secretOnce")}</p>`
        : html`<p class="muted small">${t("secretHidden")}</p>`}
      <button type="button" onClick=${() => setConfirm(true)}>${t("rotateSecret")}</button>
    </section>
    <section class="card" aria-labelledby="usage-heading">
      <h2 id="usage-heading">${t("usage")}</h2>
      ${info ? html`<dl class="facts">
        <dt>${t("spaceUsed")}</dt><dd>${formatSize(info.spaceUsed)}</dd>
        <dt>${t("downloadTrafficToday")}</dt>
        <dd>${formatSize(info.downloadTrafficUsed)} / ${limit < 0 ? t("unlimited") : formatSize(limit)}</dd>
        <dt>VIP</dt><dd>${info.vip ? t("yes") : t("no")}</dd>
      </dl>` : html`<p>${t("loading")}</p>`}
    </section>
    <section class="card" aria-labelledby="links-heading">
      <h2 id="links-heading">${t("linkSettings")}</h2>
      <form onSubmit=${saveSettings}>
        <label for="custom-domain">${t("customDomain")}</label>
        <input id="custom-domain" name="customDomain" value=${me.customDomain} placeholder="img.example.com" />
        <label for="referer-allow">${t("refererAllow")}</label>
        <input id="referer-allow" name="refererAllow" value=${me.refererAllow} placeholder="blog.example.com, *.example.org" />
        <label class="check"><input type="checkbox" name="refererAllowEmpty" checked=${me.refererAllowEmpty} /> ${t("refererAllowEmpty")}</label>
        <fieldset>
          <legend>${t("linkSecret")} (${me.linkSecretSet ? t("on") : t("off")})</legend>
          <label class="check"><input type="radio" name="linkSecretMode" value="keep" checked /> ${t("keep")}</label>
          <label class="check"><input type="radio" name="linkSecretMode" value="set" /> ${t("setNew")}</label>
          <label class="check"><input type="radio" name="linkSecretMode" value="off" /> ${t("turnOff")}</label>
          <label for="link-secret">${t("newLinkSecret")}</label>
          <input id="link-secret" name="linkSecret" type="password" autocomplete="off" minlength="8" />
        </fieldset>
        ${settingsError && html`<p class="error" role="alert">${settingsError}</p>`}
        <button type="submit" class="primary">${t("save")}</button>
      </form>
    </section>
    <section class="card" aria-labelledby="shares-heading">
      <h2 id="shares-heading">${t("sharedFolders")}</h2>
      ${shares.length === 0 ? html`<p class="muted">${t("noShares")}</p>` : html`<ul class="shares">
        ${shares.map((s) => html`<li><a href=${"#/gallery/" + s.folderId}>📁 ${s.folderName}</a>
          <a href=${s.url} target="_blank" rel="noopener" class="small">${s.url}</a>
          <button type="button" class="danger" onClick=${() => revoke(s.token)}>${t("revoke")}</button></li>`)}
      </ul>`}
    </section>
    <section class="card" aria-labelledby="password-heading">
      <h2 id="password-heading">${t("changePassword")}</h2>
      <form onSubmit=${changePassword}>
        <label for="pw-current">${t("currentPassword")}</label>
        <input id="pw-current" name="current" type="password" autocomplete="current-password" required />
        <label for="pw-new">${t("newPassword")}</label>
        <input id="pw-new" name="password" type="password" autocomplete="new-password" minlength="8" required />
        <label for="pw-again">${t("newPasswordAgain")}</label>
        <input id="pw-again" name="again" type="password" autocomplete="new-password" minlength="8" required />
        ${passwordError && html`<p class="error" role="alert">${passwordError}</p>`}
        <button type="submit">${t("changePassword")}</button>
      </form>
    </section>
    ${confirm && html`<${Confirm} text=${t("confirmRotate")} action=${t("rotateSecret")} onYes=${rotate} onClose=${() => setConfirm(false)} />`}
  </main>`;
}
