// One image: a larger preview, what it is, and its public link in the four forms.
import { call } from "../api.js";
import { formatSize, t } from "../i18n.js";
import { FORMATS, linkAs } from "../links.js";
import { Confirm, CopyField, html, notify, useEffect, useState } from "../ui.js";

export function Detail({ fileId }) {
  const [file, setFile] = useState(null);
  const [error, setError] = useState("");
  const [confirm, setConfirm] = useState(false);
  useEffect(() => {
    setFile(null);
    call("/web/api/file", { query: { fileId } }).then(setFile, (err) => setError(err.message));
  }, [fileId]);

  if (error) return html`<main id="main" class="page"><h1>${t("image")}</h1><p class="error" role="alert">${error}</p></main>`;
  if (!file) return html`<main id="main" class="page"><h1>${t("image")}</h1><p>${t("loading")}</p></main>`;

  async function remove() {
    await call("/api/v1/oss/file/delete", { body: { fileIDs: [file.fileId] } });
    notify(t("deletedN", 1));
    history.back();
  }

  const size = file.width ? `${file.width} × ${file.height}${file.frames > 1 ? ` · ${t("frames", file.frames)}` : ""}` : "—";
  return html`<main id="main" class="page detail">
    <div class="head">
      <h1>${file.filename}</h1>
      <button type="button" class="plain" onClick=${() => history.back()}>← ${t("back")}</button>
    </div>
    <div class="detail-body">
      <figure class="preview">
        <a href=${file.url}><img src=${file.previewURL} alt=${file.filename} /></a>
      </figure>
      <section aria-label=${t("information")}>
        <dl class="facts">
          <dt>${t("size")}</dt><dd>${formatSize(file.size)}</dd>
          <dt>${t("dimensions")}</dt><dd>${size}</dd>
          <dt>${t("uploaded")}</dt><dd>${file.createAt}</dd>
          <dt>MD5</dt><dd class="mono">${file.etag}</dd>
        </dl>
        ${FORMATS.map((f) => html`<${CopyField} id=${"link-" + f} label=${t("format_" + f)} value=${linkAs(f, file.filename, file.url)} />`)}
        <${CopyField} id="link-thumb" label=${t("thumbnailURL")} value=${file.thumbURL} />
        ${file.selfURL && file.selfURL !== file.url &&
        html`<${CopyField} id="link-self" label=${t("customDomainURL")} value=${file.selfURL} />`}
        <div class="actions">
          <a class="button" href=${file.url} download=${file.filename}>${t("download")}</a>
          <button type="button" class="danger" onClick=${() => setConfirm(true)}>${t("delete")}</button>
        </div>
      </section>
    </div>
    ${confirm && html`<${Confirm} text=${t("confirmDelete", 1)} action=${t("delete")} onYes=${remove} onClose=${() => setConfirm(false)} />`}
  </main>`;
}
