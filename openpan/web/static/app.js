// The web app: who is signed in, the hash route (#/gallery/<folder>, #/file/<id>, #/tasks,
// #/disk/<dir>, #/account, #/admin), the header and the upload panel.
import { render } from "./vendor/htm-preact-standalone.js";
import { call, setCsrf, whenSignedOut } from "./api.js";
import { listenForFiles } from "./drop.js";
import { formatSize, language, setLanguage, t } from "./i18n.js";
import { Bar, Notices, html, useEffect, useState } from "./ui.js";
import { clearFinished, retry, subscribe, uploads } from "./upload.js";
import { Account } from "./views/account.js";
import { Admin } from "./views/admin.js";
import { Detail } from "./views/detail.js";
import { Disk } from "./views/disk.js";
import { Gallery } from "./views/gallery.js";
import { Login } from "./views/login.js";
import { Tasks } from "./views/tasks.js";

function route() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  return { name: name || "gallery", arg: decodeURIComponent(rest.join("/")) };
}

const TITLES = { gallery: "gallery", file: "image", tasks: "offline", disk: "cloudDisk", account: "account", admin: "admin" };

function App() {
  const [me, setMe] = useState(undefined);
  const [where, setWhere] = useState(route());
  const [, setLang] = useState(language());

  useEffect(() => {
    whenSignedOut(() => setMe(null));
    call("/web/api/me").then(signedIn, () => setMe(null));
    const onHash = () => setWhere(route());
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);

  useEffect(() => {
    document.title = me ? `${t(TITLES[where.name] || "gallery")} · openpan` : `${t("signIn")} · openpan`;
  });

  function signedIn(who) {
    setCsrf(who.csrf);
    setMe(who);
  }

  async function signOut() {
    try {
      await call("/web/api/logout", { body: {} });
    } finally {
      setCsrf("");
      setMe(null);
    }
  }

  function switchLanguage() {
    const next = language() === "zh" ? "en" : "zh";
    setLanguage(next);
    setLang(next);
  }

  const languageButton = html`<button type="button" class="plain lang" onClick=${switchLanguage}
    lang=${language() === "zh" ? "en" : "zh-CN"}>${language() === "zh" ? "English" : "中文"}</button>`;

  if (me === undefined) return html`<main id="main" class="page"><p>${t("loading")}</p></main>`;
  if (me === null) {
    return html`<header class="bar"><span class="brand">openpan</span><span class="spacer"></span>${languageButton}</header>
      <${Login} onSignedIn=${signedIn} />`;
  }
  const tab = (name, label, href) =>
    html`<a href=${href} aria-current=${where.name === name || (name === "gallery" && where.name === "file") ? "page" : undefined}>${label}</a>`;
  let view;
  switch (where.name) {
    case "file":
      view = html`<${Detail} fileId=${where.arg} />`;
      break;
    case "tasks":
      view = html`<${Tasks} />`;
      break;
    case "disk":
      view = html`<${Disk} dirId=${where.arg} />`;
      break;
    case "account":
      view = html`<${Account} me=${me} onChanged=${signedIn} onSignedOut=${() => setMe(null)} />`;
      break;
    case "admin":
      view = html`<${Admin} />`;
      break;
    default:
      view = html`<${Gallery} folderId=${where.arg} />`;
  }
  return html`<a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); const m = document.getElementById("main"); if (m) { m.tabIndex = -1; m.focus(); } }}>${t("skipToContent")}</a>
    <header class="bar">
      <a class="brand" href="#/gallery">openpan</a>
      <nav class="tabs" aria-label=${t("mainMenu")}>
        ${tab("gallery", t("imageBed"), "#/gallery")}
        ${tab("disk", t("cloudDisk"), "#/disk")}
        ${tab("tasks", t("offline"), "#/tasks")}
        ${tab("account", t("account"), "#/account")}
        ${me.isAdmin && tab("admin", t("admin"), "#/admin")}
      </nav>
      <span class="spacer"></span>
      <span class="who">${me.name}</span>
      ${languageButton}
      <button type="button" class="plain" onClick=${signOut}>${t("signOut")}</button>
    </header>
    ${view}
    <${UploadPanel} />
    <div class="drop-hint" aria-hidden="true">${t("dropHere")}</div>
    <${Notices} />`;
}

function UploadPanel() {
  const [items, setItems] = useState(uploads());
  useEffect(() => subscribe(setItems), []);
  if (!items.length) return null;
  const active = items.filter((i) => !["done", "instant", "failed"].includes(i.state)).length;
  return html`<aside class="uploads" aria-label=${t("uploads")}>
    <div class="uploads-head">
      <strong>${active ? t("uploadingN", active) : t("uploadsDone")}</strong>
      <button type="button" class="plain" onClick=${clearFinished}>${t("clearFinished")}</button>
    </div>
    <ul>
      ${items.map((item) => {
        const hashing = item.state === "hashing";
        const value = hashing ? item.hashed : item.sent;
        return html`<li class=${"upload " + item.state} data-state=${item.state}>
          <div class="upload-name" title=${item.name}>${item.name}</div>
          <${Bar} value=${value} max=${item.size} label=${t("progressOf", item.name)} />
          <div class="small">
            ${t("state_" + item.state)} · ${formatSize(item.size)}
            ${hashing || item.state === "uploading" ? ` · ${Math.floor((100 * value) / (item.size || 1))}%` : ""}
          </div>
          ${item.message && html`<div class="error small">${item.message}</div>`}
          ${item.state === "failed" && html`<button type="button" onClick=${() => retry(item.id)}>${t("retry")}</button>`}
        </li>`;
      })}
    </ul>
  </aside>`;
}

listenForFiles();
render(html`<${App} />`, document.getElementById("app"));
