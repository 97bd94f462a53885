// Offline downloads (into the image bed or the cloud disk) and copy tasks, with live progress.
import { call } from "../api.js";
import { formatSize, t } from "../i18n.js";
import { Bar, html, useEffect, useState } from "../ui.js";

const UNFINISHED = new Set([0, 3]);
const STATUS = { 0: "running", 1: "failed", 2: "succeeded", 3: "retrying" };
const COPY_STATUS = { 1: "running", 2: "succeeded", 3: "failed", 4: "waiting" };

export function Tasks() {
  const [tasks, setTasks] = useState(null);
  const [errors, setErrors] = useState([]);
  const [busy, setBusy] = useState(false);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    let timer;
    let alive = true;
    async function poll() {
      try {
        const next = await call("/web/api/tasks");
        if (!alive) return;
        setTasks(next);
        const pending = next.offline.some((x) => UNFINISHED.has(x.status)) || next.copy.some((x) => [1, 4].includes(x.status));
        if (pending) timer = setTimeout(poll, 1000);
      } catch {}
    }
    poll();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [tick]);

  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    const urls = form.get("urls").split(/\s+/).filter(Boolean);
    const space = form.get("space");
    setBusy(true);
    const failed = [];
    for (const url of urls) {
      try {
        if (space === "oss") await call("/api/v1/oss/offline/download", { body: { url, type: 1 } });
        else await call("/api/v1/offline/download", { body: { url } });
      } catch (err) {
        failed.push(`${url}: ${err.message}`);
      }
    }
    setErrors(failed);
    setBusy(false);
    if (failed.length < urls.length) event.target.reset();
    setTick((n) => n + 1);
  }

  return html`<main id="main" class="page">
    <h1>${t("offline")}</h1>
    <form class="card" onSubmit=${submit}>
      <label for="offline-urls">${t("offlineUrls")}</label>
      <textarea id="offline-urls" name="urls" rows="3" required placeholder="https://example.com/picture.jpg"></textarea>
      <fieldset class="inline">
        <legend>${t("saveInto")}</legend>
        <label><input type="radio" name="space" value="oss" checked /> ${t("imageBed")}</label>
        <label><input type="radio" name="space" value="disk" /> ${t("cloudDisk")}</label>
      </fieldset>
      ${errors.map((e) => html`<p class="error" role="alert">${e}</p>`)}
      <button type="submit" class="primary" disabled=${busy}>${t("startDownload")}</button>
    </form>
    <h2>${t("offlineTasks")}</h2>
    ${tasks === null ? html`<p>${t("loading")}</p>` : tasks.offline.length === 0 ? html`<p class="empty">${t("noTasks")}</p>` : html`<ul class="tasks">
      ${tasks.offline.map((task) => html`<li class=${"task " + STATUS[task.status]} data-task=${task.taskID}>
        <div class="task-head">
          <span class="task-name">${task.fileName || task.url}</span>
          <span class="badge">${t("status_" + STATUS[task.status])}</span>
        </div>
        <div class="muted small url">${task.url}</div>
        <${Bar} value=${task.process} max=${100} label=${t("progressOf", task.fileName || task.url)} />
        <div class="small">${task.process.toFixed(0)}% · ${formatSize(task.bytesDone)}${task.bytesTotal ? ` / ${formatSize(task.bytesTotal)}` : ""}
          · ${task.space === "oss" ? t("imageBed") : t("cloudDisk")} · ${task.createAt}</div>
        ${task.failReason && html`<div class="error small">${task.failReason}</div>`}
        ${task.status === 2 && task.fileID && html`<a href=${task.space === "oss" ? "#/file/" + task.fileID : "#/disk"}>${t("openFile")}</a>`}
      </li>`)}
    </ul>`}
    ${tasks && tasks.copy.length > 0 && html`<h2>${t("copyTasks")}</h2><ul class="tasks">
      ${tasks.copy.map((task) => html`<li class="task">
        <div class="task-head"><span class="task-name">${t("copyNFiles", task.count)}</span>
          <span class="badge">${t("status_" + COPY_STATUS[task.status])}</span></div>
        <div class="small">${task.createAt}</div>
        ${task.failMsg && html`<div class="error small">${task.failMsg}</div>`}
      </li>`)}
    </ul>`}
  </main>`;
}
