// Small pieces the views share: dialogs, breadcrumbs, copy fields, the folder picker, notices.
import { html, useEffect, useRef, useState } from "./vendor/htm-preact-standalone.js";
import { call } from "./api.js";
import { t } from "./i18n.js";

export { html, useEffect, useRef, useState };

// One live region for short notices ("Copied", "Deleted 3 files"), read out by screen readers.
let showNotice = () => {};
export function notify(text) {
  showNotice(text);
}

export function Notices() {
  const [text, setText] = useState("");
  useEffect(() => {
    let timer;
    showNotice = (next) => {
      setText(next);
      clearTimeout(timer);
      timer = setTimeout(() => setText(""), 4000);
    };
  }, []);
  return html`<div class="notice" role="status" aria-live="polite">${text}</div>`;
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Not a secure context (plain http on a LAN address): the old way still works.
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  notify(t("copied"));
}

export function CopyField({ label, value, id }) {
  return html`<div class="copy-field">
    <label for=${id}>${label}</label>
    <div class="row">
      <input id=${id} readonly value=${value} onFocus=${(e) => e.target.select()} />
      <button type="button" onClick=${() => copyText(value)}>${t("copy")}</button>
    </div>
  </div>`;
}

// A modal <dialog>: Escape and the close button end it; focus stays inside while open.
export function Dialog({ title, onClose, children }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    dialog.showModal();
    const cancel = (event) => {
      event.preventDefault();
      onClose();
    };
    dialog.addEventListener("cancel", cancel);
    return () => dialog.removeEventListener("cancel", cancel);
  }, []);
  return html`<dialog ref=${ref} aria-labelledby="dialog-title">
    <div class="dialog-head">
      <h2 id="dialog-title">${title}</h2>
      <button type="button" class="plain" aria-label=${t("close")} onClick=${onClose}>×</button>
    </div>
    ${children}
  </dialog>`;
}

export function Confirm({ text, action, onYes, onClose }) {
  return html`<${Dialog} title=${t("confirm")} onClose=${onClose}>
    <p>${text}</p>
    <div class="actions">
      <button type="button" onClick=${onClose}>${t("cancel")}</button>
      <button type="button" class="danger" onClick=${onYes}>${action}</button>
    </div>
  <//>`;
}

export function Crumbs({ rootLabel, rootHref, path, href }) {
  return html`<nav class="crumbs" aria-label=${t("breadcrumbs")}>
    <a href=${rootHref}>${rootLabel}</a>
    ${path.map((dir) => html`<span aria-hidden="true">/</span><a href=${href(dir.fileId)}>${dir.name}</a>`)}
  </nav>`;
}

export function Bar({ value, max, label }) {
  return html`<progress value=${value} max=${max || 1} aria-label=${label}></progress>`;
}

// The folders of one directory, by space: the image bed's come from /web/api/gallery, the
// cloud disk's from /api/v2/file/list. Returns [{fileId, name}].
export async function subfolders(space, parentId) {
  if (space === "oss") {
    const page = await call("/web/api/gallery", { query: { parentFileId: parentId || "", limit: 100 } });
    return page.items.filter((i) => i.type === 1).map((i) => ({ fileId: i.fileId, name: i.filename }));
  }
  const page = await call("/api/v2/file/list", { query: { parentFileId: parentId || 0, limit: 100 } });
  return page.fileList
    .filter((f) => f.type === 1 && !f.trashed)
    .map((f) => ({ fileId: f.fileId, name: f.filename }));
}

// Pick a folder of `space`, starting at the root; `onPick({fileId, path})`.
export function FolderPicker({ space, title, onPick, onClose }) {
  const [path, setPath] = useState([]);
  const [folders, setFolders] = useState(null);
  const current = path.length ? path[path.length - 1].fileId : space === "oss" ? "" : 0;
  useEffect(() => {
    setFolders(null);
    subfolders(space, current).then(setFolders, () => setFolders([]));
  }, [current]);
  return html`<${Dialog} title=${title} onClose=${onClose}>
    <nav class="crumbs" aria-label=${t("breadcrumbs")}>
      <button type="button" class="link" onClick=${() => setPath([])}>${t("root")}</button>
      ${path.map(
        (dir, i) => html`<span aria-hidden="true">/</span
          ><button type="button" class="link" onClick=${() => setPath(path.slice(0, i + 1))}>${dir.name}</button>`,
      )}
    </nav>
    <ul class="picker">
      ${folders === null
        ? html`<li class="muted">${t("loading")}</li>`
        : folders.length === 0
          ? html`<li class="muted">${t("noSubfolders")}</li>`
          : folders.map(
              (f) => html`<li>
                <button type="button" class="link" onClick=${() => setPath([...path, f])}>📁 ${f.name}</button>
              </li>`,
            )}
    </ul>
    <div class="actions">
      <button type="button" onClick=${onClose}>${t("cancel")}</button>
      <button type="button" class="primary" onClick=${() => onPick({ fileId: current, path })}>
        ${t("chooseThisFolder")}
      </button>
    </div>
  <//>`;
}
