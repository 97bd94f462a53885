// The four forms an image's public link is pasted in.
export const FORMATS = ["url", "markdown", "html", "bbcode"];

const escapeHtml = (s) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
const escapeMarkdown = (s) => s.replace(/[\[\]\\]/g, "\\$&");

export function linkAs(format, name, url) {
  switch (format) {
    case "markdown":
      return `![${escapeMarkdown(name)}](${url})`;
    case "html":
      return `<img src="${escapeHtml(url)}" alt="${escapeHtml(name)}">`;
    case "bbcode":
      return `[img]${url}[/img]`;
    default:
      return url;
  }
}
