// Chinese and English: chosen from the browser's language, switchable (remembered in the
// `openpan_lang` cookie, which the server-rendered pages read too). A key missing from a
// dictionary is reported on the console, which the browser tests watch.
import { messages } from "./messages.js";

function initial() {
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("openpan_lang="));
  const chosen = cookie ? cookie.split("=")[1] : "";
  if (chosen === "zh" || chosen === "en") return chosen;
  for (const tag of navigator.languages || [navigator.language || ""]) {
    if (tag.toLowerCase().startsWith("zh")) return "zh";
    if (tag.toLowerCase().startsWith("en")) return "en";
  }
  return "zh";
}

let lang = initial();
document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";

export function language() {
  return lang;
}

export function setLanguage(next) {
  lang = next;
  document.cookie = `openpan_lang=${next}; path=/; max-age=31536000; samesite=lax`;
  document.documentElement.lang = next === "zh" ? "zh-CN" : "en";
}

// t("key", a, b) with {0}, {1} replaced.
export function t(key, ...args) {
  let text = messages[lang][key];
  if (text === undefined) {
    console.error(`untranslated: ${lang}.${key}`);
    text = key;
  }
  return args.reduce((s, arg, i) => s.replaceAll(`{${i}}`, String(arg)), text);
}

export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
