// The image bed as a gallery: a folder's entries newest first, paged with the API's cursor as
// one scrolls; thumbnails are small variants of the public links, never the originals.
import { call } from "../api.js";
import { t } from "../i18n.js";
import { FORMATS, linkAs } from "../links.js";
import { Confirm, Crumbs, Dialog, FolderPicker, copyText, html, notify, useEffect, useRef, useState } from "../ui.js";
import { enqueue } from "../upload.js";
import { useDropTarget } from "../drop.js";

const PAGE = 60;
const chunks = (list, size) => Array.from({ length: Math.ceil(list.length / size) }, (_, i) => list.slice(i * size, (i + 1) * size));

export function Gallery({ folderId }) {
  const [path, setPath] = useState([]);
  const [items, setItems] = useState([]);
  const [cursor, setCursor] = useState("");
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState("");
  const [selected, setSelected] = useState(new Set());
  const [anchor, setAnchor] = useState(-1);
  const [dialog, setDialog] = useState(null);
  const [format, setFormat] = useState("url");
  const [generation, setGeneration] = useState(0);
  const sentinel = useRef(null);
  const state = useRef({});
  state.current = { cursor, loading };

  async function load(from) {
    if (state.current.loading) return;
    setLoading(true);
    try {
      const page = await call("/web/api/gallery", { query: { parentFileId: folderId, lastFileId: from, limit: PAGE } });
      setItems((old) => (from ? [...old, ...page.items] : page.items));
      setCursor(page.lastFileId);
      setError("");
    } catch (err) {
      setError(err.message);
    } finally {
      setLoading(false);
    }
  }

  const reload = () => setGeneration((g) => g + 1);

  useEffect(() => {
    setItems([]);
    setSelected(new Set());
    setCursor("");
    state.current.loading = false;
    load("");
    call("/web/api/path", { query: { space: "oss", fileId: folderId } }).then((p) => setPath(p.path), () => setPath([]));
  }, [folderId, generation]);

  // Lazy paging: the next page loads when the end of the grid comes into view.
  useEffect(() => {
    const observer = new IntersectionObserver((entries) => {
      const { cursor: next, loading: busy } = state.current;
      if (entries[0].isIntersecting && next && next !== "-1" && !busy) load(next);
    }, { rootMargin: "400px" });
    if (sentinel.current) observer.observe(sentinel.current);
    return () => observer.disconnect();
  }, [folderId, generation, cursor]);

  let refresh;
  useDropTarget({ space: "oss", parentId: folderId, onDone: () => { clearTimeout(refresh); refresh = setTimeout(reload, 400); } });

  function toggle(index, shift) {
    const next = new Set(selected);
    const id = items[index].fileId;
    const on = !next.has(id);
    if (shift && anchor >= 0) {
      const [from, to] = anchor < index ? [anchor, index] : [index, anchor];
      for (let i = from; i <= to; i++) next.add(items[i].fileId);
    } else if (on) next.add(id);
    else next.delete(id);
    setAnchor(index);
    setSelected(next);
  }

  const allSelected = items.length > 0 && selected.size === items.length;
  const chosen = items.filter((i) => selected.has(i.fileId));
  const chosenImages = chosen.filter((i) => i.type === 0);

  async function remove() {
    setDialog(null);
    try {
      for (const part of chunks(chosen.map((i) => i.fileId), 100)) {
        await call("/api/v1/oss/file/delete", { body: { fileIDs: part } });
      }
      notify(t("deletedN", chosen.length));
    } catch (err) {
      notify(err.message);
    }
    reload();
  }

  async function moveTo(target) {
    setDialog(null);
    try {
      for (const part of chunks(chosen.map((i) => i.fileId), 100)) {
        await call("/api/v1/oss/file/move", { body: { fileIDs: part, toParentFileID: target.fileId } });
      }
      notify(t("movedN", chosen.length));
    } catch (err) {
      notify(err.message);
    }
    reload();
  }

  async function mkdir(event) {
    event.preventDefault();
    const name = new FormData(event.target).get("name").trim();
    try {
      await call("/upload/v1/oss/file/mkdir", { body: { name: [name], parentID: folderId, type: 1 } });
      setDialog(null);
      reload();
    } catch (err) {
      setDialog({ kind: "mkdir", error: err.message });
    }
  }

  async function share() {
    try {
      setDialog({ kind: "share", share: await call("/web/api/shares/create", { body: { fileId: folderId } }) });
    } catch (err) {
      notify(err.message);
    }
  }

  async function revoke(token) {
    await call("/web/api/shares/revoke", { body: { token } });
    setDialog(null);
    notify(t("shareRevoked"));
  }

  const folderHref = (id) => `#/gallery/${encodeURIComponent(id)}`;
  return html`<main id="main" class="page">
    <div class="head">
      <h1>${path.length ? path[path.length - 1].name : t("imageBed")}</h1>
      <${Crumbs} rootLabel=${t("imageBed")} rootHref="#/gallery" path=${path} href=${folderHref} />
    </div>
    <div class="toolbar">
      <button type="button" class="primary" onClick=${() => setDialog({ kind: "upload", target: { fileId: folderId, path } })}>${t("upload")}</button>
      <button type="button" onClick=${() => setDialog({ kind: "mkdir" })}>${t("newFolder")}</button>
      ${folderId && html`<button type="button" onClick=${share}>${t("shareFolder")}</button>`}
      <label class="check"><input type="checkbox" checked=${allSelected} disabled=${!items.length}
        onChange=${() => setSelected(allSelected ? new Set() : new Set(items.map((i) => i.fileId)))} /> ${t("selectAll")}</label>
    </div>
    ${selected.size > 0 && html`<div class="toolbar selection" role="region" aria-label=${t("selection")}>
      <span>${t("selectedN", selected.size)}</span>
      <label for="copy-format" class="sr-only">${t("linkFormat")}</label>
      <select id="copy-format" value=${format} onChange=${(e) => setFormat(e.target.value)}>
        ${FORMATS.map((f) => html`<option value=${f}>${t("format_" + f)}</option>`)}
      </select>
      <button type="button" disabled=${!chosenImages.length}
        onClick=${() => copyText(chosenImages.map((i) => linkAs(format, i.filename, i.url)).join("\n"))}>${t("copyLinks")}</button>
      <button type="button" onClick=${() => setDialog({ kind: "move" })}>${t("moveTo")}</button>
      <button type="button" class="danger" onClick=${() => setDialog({ kind: "delete" })}>${t("delete")}</button>
      <button type="button" class="plain" onClick=${() => setSelected(new Set())}>${t("clearSelection")}</button>
    </div>`}
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${!loading && !error && items.length === 0 && html`<p class="empty">${t("emptyFolder")}</p>`}
    <ul class="grid" aria-label=${t("gallery")}>
      ${items.map((item, index) => html`<li key=${item.fileId} class=${"tile" + (selected.has(item.fileId) ? " selected" : "")}>
        <input type="checkbox" class="pick" checked=${selected.has(item.fileId)} aria-label=${t("selectItem", item.filename)}
          onClick=${(e) => toggle(index, e.shiftKey)} />
        ${item.type === 1
          ? html`<a class="thumb folder" href=${folderHref(item.fileId)}><span aria-hidden="true">📁</span><span class="sr-only">${t("openFolder", item.filename)}</span></a>`
          : html`<a class="thumb" href=${"#/file/" + encodeURIComponent(item.fileId)}>
              <img src=${item.thumbURL} alt=${item.filename} loading="lazy" decoding="async" width="256" height="256" /></a>`}
        <span class="name" title=${item.filename}>${item.filename}</span>
      </li>`)}
    </ul>
    <div ref=${sentinel} class="sentinel">${loading && t("loading")}</div>
    ${dialog?.kind === "delete" && html`<${Confirm} text=${t("confirmDelete", chosen.length)} action=${t("delete")} onYes=${remove} onClose=${() => setDialog(null)} />`}
    ${dialog?.kind === "move" && html`<${FolderPicker} space="oss" title=${t("moveTo")} onPick=${moveTo} onClose=${() => setDialog(null)} />`}
    ${dialog?.kind === "mkdir" && html`<${Dialog} title=${t("newFolder")} onClose=${() => setDialog(null)}>
      <form onSubmit=${mkdir}>
        <label for="mkdir-name">${t("folderName")}</label>
        <input id="mkdir-name" name="name" required maxlength="255" autofocus />
        ${dialog.error && html`<p class="error" role="alert">${dialog.error}</p>`}
        <div class="actions"><button type="submit" class="primary">${t("create")}</button></div>
      </form>
    <//>`}
    ${dialog?.kind === "share" && html`<${Dialog} title=${t("shareFolder")} onClose=${() => setDialog(null)}>
      <p>${t("shareExplain")}</p>
      <div class="copy-field"><label for="share-url">${t("shareLink")}</label>
        <div class="row"><input id="share-url" readonly value=${dialog.share.url} />
        <button type="button" onClick=${() => copyText(dialog.share.url)}>${t("copy")}</button></div></div>
      <div class="actions"><button type="button" class="danger" onClick=${() => revoke(dialog.share.token)}>${t("revoke")}</button></div>
    <//>`}
    ${dialog?.kind === "upload" && html`<${UploadDialog} target=${dialog.target} onDone=${reload} onClose=${() => setDialog(null)}
      onPickFolder=${() => setDialog({ kind: "pick-upload" })} />`}
    ${dialog?.kind === "pick-upload" && html`<${FolderPicker} space="oss" title=${t("uploadInto")}
      onPick=${(target) => setDialog({ kind: "upload", target })} onClose=${() => setDialog(null)} />`}
  </main>`;
}

function UploadDialog({ target, onDone, onClose, onPickFolder }) {
  const where = target.path.length ? target.path.map((d) => d.name).join(" / ") : t("root");
  function chosen(event) {
    enqueue([...event.target.files], { space: "oss", parentId: target.fileId, onDone });
    onClose();
  }
  return html`<${Dialog} title=${t("upload")} onClose=${onClose}>
    <p>${t("uploadInto")}: <strong>${where}</strong> <button type="button" class="link" onClick=${onPickFolder}>${t("change")}</button></p>
    <label class="button primary file-button">${t("chooseFiles")}
      <input type="file" multiple accept="image/*,.svg,.tif,.tiff,.bmp" class="sr-only" onChange=${chosen} data-testid="upload-input" />
    </label>
    <p class="muted small">${t("uploadHint")}</p>
  <//>`;
}
