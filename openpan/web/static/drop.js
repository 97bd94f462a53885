// Files dropped on the page or pasted from the clipboard go where the open view says: the
// gallery's folder or the cloud disk's directory. Elsewhere they are ignored.
import { useEffect } from "./vendor/htm-preact-standalone.js";
import { enqueue } from "./upload.js";

let target = null;

export function useDropTarget(next) {
  target = next;
  useEffect(() => {
    target = next;
    return () => {
      if (target === next) target = null;
    };
  });
}

function hasFiles(event) {
  return [...(event.dataTransfer?.types || [])].includes("Files");
}

export function listenForFiles() {
  document.addEventListener("dragover", (event) => {
    if (!target || !hasFiles(event)) return;
    event.preventDefault();
    document.body.classList.add("dropping");
  });
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) document.body.classList.remove("dropping");
  });
  document.addEventListener("drop", (event) => {
    document.body.classList.remove("dropping");
    if (!target || !hasFiles(event)) return;
    event.preventDefault();
    enqueue([...event.dataTransfer.files], target);
  });
  document.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])];
    if (!target || !files.length) return;
    event.preventDefault();
    // A pasted screenshot is called "image.png" by every browser: give it a unique name.
    const stamp = new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14);
    const named = files.map((f, i) =>
      f.name && f.name !== "image.png" ? f : new File([f], `paste-${stamp}-${i + 1}.${(f.type.split("/")[1] || "png").replace("jpeg", "jpg")}`, { type: f.type }),
    );
    enqueue(named, target);
  });
}
