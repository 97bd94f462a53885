// The cloud disk (云盘): browse, upload, download, rename, move, trash and restore, and copy
// images into the image bed — all through the cloud-disk API every client uses.
import { call } from "../api.js";
import { formatSize, t } from "../i18n.js";
import { Confirm, Crumbs, Dialog, FolderPicker, html, notify, useEffect, useState } from "../ui.js";
import { enqueue } from "../upload.js";
import { useDropTarget } from "../drop.js";

const IMAGE = /\.(png|jpe?g|gif|webp|bmp|tiff?|svg)$/i;

export function Disk({ dirId }) {
  const dir = Number(dirId || 0);
  const [path, setPath] = useState([]);
  const [entries, setEntries] = useState(null);
  const [cursor, setCursor] = useState("");
  const [showTrash, setShowTrash] = useState(false);
  const [selected, setSelected] = useState(new Set());
  const [dialog, setDialog] = useState(null);
  const [error, setError] = useState("");
  const [generation, setGeneration] = useState(0);
  const reload = () => setGeneration((g) => g + 1);

  async function load(from) {
    try {
      const page = await call("/api/v2/file/list", { query: { parentFileId: dir, limit: 100, lastFileId: from } });
      setEntries((old) => (from && old ? [...old, ...page.fileList] : page.fileList));
      setCursor(page.lastFileId === -1 || page.lastFileId === "-1" ? "" : String(page.lastFileId));
      setError("");
    } catch (err) {
      setError(err.message);
      setEntries([]);
    }
  }

  useEffect(() => {
    setEntries(null);
    setSelected(new Set());
    load("");
    call("/web/api/path", { query: { space: "disk", fileId: dir } }).then((p) => setPath(p.path), () => setPath([]));
  }, [dir, generation]);

  let refresh;
  useDropTarget({ space: "disk", parentId: dir, onDone: () => { clearTimeout(refresh); refresh = setTimeout(reload, 400); } });

  const shown = (entries || []).filter((e) => (showTrash ? e.trashed : !e.trashed));
  const chosen = shown.filter((e) => selected.has(e.fileId));
  const ids = chosen.map((e) => e.fileId);

  function toggle(id) {
    const next = new Set(selected);
    next.has(id) ? next.delete(id) : next.add(id);
    setSelected(next);
  }

  async function act(work, message) {
    setDialog(null);
    try {
      await work();
      if (message) notify(message);
    } catch (err) {
      notify(err.message);
    }
    reload();
  }

  async function download(entry) {
    try {
      const { downloadUrl } = await call("/api/v1/file/download_info", { query: { fileId: entry.fileId } });
      const link = document.createElement("a");
      link.href = downloadUrl;
      link.download = entry.filename;
      document.body.append(link);
      link.click();
      link.remove();
    } catch (err) {
      notify(err.message);
    }
  }

  async function rename(event) {
    event.preventDefault();
    const name = new FormData(event.target).get("name").trim();
    act(() => call("/api/v1/file/name", { method: "PUT", body: { fileId: dialog.entry.fileId, fileName: name } }), t("renamed"));
  }

  async function mkdir(event) {
    event.preventDefault();
    const name = new FormData(event.target).get("name").trim();
    act(() => call("/upload/v1/file/mkdir", { body: { name, parentID: dir } }));
  }

  const copyable = chosen.filter((e) => e.type === 0 && IMAGE.test(e.filename));
  return html`<main id="main" class="page">
    <div class="head">
      <h1>${path.length ? path[path.length - 1].name : t("cloudDisk")}</h1>
      <${Crumbs} rootLabel=${t("cloudDisk")} rootHref="#/disk" path=${path} href=${(id) => `#/disk/${id}`} />
    </div>
    <div class="toolbar">
      <label class="button primary file-button">${t("upload")}
        <input type="file" multiple class="sr-only" data-testid="disk-upload-input"
          onChange=${(e) => { enqueue([...e.target.files], { space: "disk", parentId: dir, onDone: reload }); e.target.value = ""; }} />
      </label>
      <button type="button" onClick=${() => setDialog({ kind: "mkdir" })}>${t("newFolder")}</button>
      <label class="check"><input type="checkbox" checked=${showTrash} onChange=${() => { setShowTrash(!showTrash); setSelected(new Set()); }} /> ${t("showTrash")}</label>
    </div>
    ${chosen.length > 0 && html`<div class="toolbar selection" role="region" aria-label=${t("selection")}>
      <span>${t("selectedN", chosen.length)}</span>
      ${showTrash
        ? html`<button type="button" onClick=${() => act(() => call("/api/v1/file/recover", { body: { fileIDs: ids } }), t("restoredN", ids.length))}>${t("restore")}</button>`
        : html`
          <button type="button" onClick=${() => setDialog({ kind: "move" })}>${t("moveTo")}</button>
          <button type="button" disabled=${!copyable.length} onClick=${() => setDialog({ kind: "copy" })}>${t("copyToImageBed")}</button>
          <button type="button" class="danger" onClick=${() => setDialog({ kind: "trash" })}>${t("moveToTrash")}</button>`}
    </div>`}
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${entries === null ? html`<p>${t("loading")}</p>` : shown.length === 0 ? html`<p class="empty">${showTrash ? t("trashEmpty") : t("emptyFolder")}</p>` : html`
    <table class="files">
      <thead><tr><th scope="col"><span class="sr-only">${t("select")}</span></th><th scope="col">${t("name")}</th>
        <th scope="col" class="num">${t("size")}</th><th scope="col" class="wide">${t("modified")}</th><th scope="col"><span class="sr-only">${t("actions")}</span></th></tr></thead>
      <tbody>${shown.map((entry) => html`<tr key=${entry.fileId}>
        <td><input type="checkbox" checked=${selected.has(entry.fileId)} aria-label=${t("selectItem", entry.filename)} onChange=${() => toggle(entry.fileId)} /></td>
        <td class="filename">${entry.type === 1 && !entry.trashed
          ? html`<a href=${"#/disk/" + entry.fileId}>📁 ${entry.filename}</a>`
          : html`<span>${entry.type === 1 ? "📁 " : ""}${entry.filename}</span>`}</td>
        <td class="num">${entry.type === 1 ? "" : formatSize(entry.size)}</td>
        <td class="wide">${entry.updateAt}</td>
        <td class="row-actions">
          ${entry.type === 0 && !entry.trashed && html`<button type="button" class="plain" onClick=${() => download(entry)}>${t("download")}</button>`}
          ${!entry.trashed && html`<button type="button" class="plain" onClick=${() => setDialog({ kind: "rename", entry })}>${t("rename")}</button>`}
        </td>
      </tr>`)}</tbody>
    </table>`}
    ${cursor && html`<p><button type="button" onClick=${() => load(cursor)}>${t("more")}</button></p>`}
    ${dialog?.kind === "mkdir" && html`<${Dialog} title=${t("newFolder")} onClose=${() => setDialog(null)}>
      <form onSubmit=${mkdir}><label for="disk-mkdir">${t("folderName")}</label>
        <input id="disk-mkdir" name="name" required maxlength="255" autofocus />
        <div class="actions"><button type="submit" class="primary">${t("create")}</button></div></form>
    <//>`}
    ${dialog?.kind === "rename" && html`<${Dialog} title=${t("rename")} onClose=${() => setDialog(null)}>
      <form onSubmit=${rename}><label for="disk-rename">${t("newName")}</label>
        <input id="disk-rename" name="name" required maxlength="255" value=${dialog.entry.filename} autofocus />
        <div class="actions"><button type="submit" class="primary">${t("rename")}</button></div></form>
    <//>`}
    ${dialog?.kind === "move" && html`<${FolderPicker} space="disk" title=${t("moveTo")} onClose=${() => setDialog(null)}
      onPick=${(target) => act(() => call("/api/v1/file/move", { body: { fileIDs: ids, toParentFileID: Number(target.fileId) } }), t("movedN", ids.length))} />`}
    ${dialog?.kind === "copy" && html`<${FolderPicker} space="oss" title=${t("copyToImageBed")} onClose=${() => setDialog(null)}
      onPick=${(target) => act(async () => {
        await call("/api/v1/oss/source/copy", { body: { fileIDs: copyable.map((e) => String(e.fileId)), toParentFileID: target.fileId, sourceType: "1", type: 1 } });
        location.hash = "#/tasks";
      }, t("copyStarted"))} />`}
    ${dialog?.kind === "trash" && html`<${Confirm} text=${t("confirmTrash", ids.length)} action=${t("moveToTrash")} onClose=${() => setDialog(null)}
      onYes=${() => act(() => call("/api/v1/file/trash", { body: { fileIDs: ids } }), t("trashedN", ids.length))} />`}
  </main>`;
}
