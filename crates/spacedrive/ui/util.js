// Small helpers: DOM building, formatting, paths as the API sends them (a string, or
// {"bytes": base64} for a name that is not UTF-8).

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    // Through the CSSOM: the page's CSP refuses style attributes.
    else if (k === "style") e.style.cssText = v;
    else if (v === true) e.setAttribute(k, "");
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function clear(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

// A path or name for people: the string, or its bytes decoded loosely.
export function shown(p) {
  if (p === null || p === undefined) return "";
  if (typeof p === "string") return p;
  if (p.bytes) {
    const bin = atob(p.bytes);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  }
  return String(p);
}

// A stable key for a path (used for selection sets and route state).
export function pathKey(p) {
  return typeof p === "string" ? "s:" + p : "b:" + (p && p.bytes);
}

export function baseName(p) {
  const s = shown(p);
  const i = s.replace(/\/+$/, "").lastIndexOf("/");
  return i < 0 ? s : s.slice(i + 1);
}

export function parentOf(p) {
  const s = shown(p).replace(/\/+$/, "");
  const i = s.lastIndexOf("/");
  return i <= 0 ? "/" : s.slice(0, i);
}

export function joinPath(dir, name) {
  const d = shown(dir).replace(/\/+$/, "");
  return `${d}/${name}`;
}

const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];
export function bytes(n) {
  if (n === null || n === undefined) return "";
  let v = Number(n), u = 0;
  while (v >= 1000 && u < UNITS.length - 1) { v /= 1000; u++; }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${UNITS[u]}`;
}

// "10MB", "1.5 GB", "300k" → bytes; null when empty; throws on nonsense.
export function parseBytes(text) {
  const t = (text || "").trim();
  if (!t) return null;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)$/i.exec(t);
  if (!m) throw new Error(`not a size: ${t}`);
  const pow = " kmgtp".indexOf((m[2] || " ").toLowerCase());
  const base = m[3].toLowerCase().startsWith("i") ? 1024 : 1000;
  return Math.round(Number(m[1]) * Math.pow(base, Math.max(pow, 0)));
}

export function count(n) {
  return n === null || n === undefined ? "" : Number(n).toLocaleString();
}

// Entry mtimes are ns since the epoch; `*_at` fields are ms.
export function dateNs(ns) {
  if (ns === null || ns === undefined) return "";
  return dateMs(Math.floor(Number(ns) / 1e6));
}

export function dateMs(ms) {
  if (!ms) return "";
  const d = new Date(Number(ms));
  const pad = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

const EXT_KIND = {
  image: "jpg jpeg png gif webp bmp tif tiff heic heif svg avif raw cr2 nef arw ico",
  video: "mp4 mkv mov avi webm m4v wmv flv mpg mpeg 3gp",
  audio: "mp3 flac wav ogg opus m4a aac wma aiff",
  document: "pdf doc docx odt rtf xls xlsx ods ppt pptx odp pages key numbers",
  book: "epub mobi azw azw3 djvu",
  archive: "zip tar gz tgz bz2 xz zst 7z rar iso dmg deb rpm",
  code: "rs js ts tsx jsx py go c h cpp hpp java kt swift rb php cs sh bash zsh lua sql html css scss toml yaml yml json xml",
  text: "txt md rst csv log ini conf cfg tex",
};
const KIND_OF_EXT = {};
for (const [k, list] of Object.entries(EXT_KIND)) for (const x of list.split(" ")) KIND_OF_EXT[x] = k;

// The kind shown for a row: folders, links, the identified content kind, else the extension's.
export function kindOf(row) {
  if (row.kind === "dir") return "folder";
  if (row.kind === "symlink") return "link";
  if (row.kind === "other") return "other";
  if (row.content_kind) return row.content_kind;
  const name = baseName(row.name ?? row.path);
  const dot = name.lastIndexOf(".");
  const ext = dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
  return KIND_OF_EXT[ext] || "file";
}

export function icon(row, big) {
  const kind = kindOf(row);
  const cls = kind === "folder" ? "dir" : kind === "link" ? "symlink" : kind;
  const name = baseName(row.name ?? row.path);
  const dot = name.lastIndexOf(".");
  const label = kind === "folder" ? "" : dot > 0 ? name.slice(dot + 1, dot + (big ? 5 : 4)).toUpperCase() : "";
  return el("span", { class: `icon ${cls}`, "aria-hidden": "true" }, label);
}

export function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

// Progress of a job as a fraction (null when unknown) and words.
export function jobProgress(job) {
  const p = job.progress || {};
  if (job.kind === "fileop" || p.steps_total !== undefined) {
    const frac = p.bytes_total ? p.bytes_done / p.bytes_total : p.steps_total ? p.steps_done / p.steps_total : null;
    return { frac, text: `${count(p.steps_done)} / ${count(p.steps_total)} steps · ${bytes(p.bytes_done)} of ${bytes(p.bytes_total)}` };
  }
  if (p.phase === "content" && p.content_total) {
    return { frac: p.content_done / p.content_total, text: `identifying ${count(p.content_done)} / ${count(p.content_total)}` };
  }
  if (p.phase) {
    const seen = (p.files || 0) + (p.dirs || 0);
    const frac = p.expected ? Math.min(seen / p.expected, 1) : null;
    return { frac, text: `${p.phase}: ${count(p.files)} files, ${count(p.dirs)} folders` };
  }
  return { frac: null, text: "" };
}

export function jobTitle(job) {
  const spec = job.spec || {};
  const params = spec.params || {};
  if (job.kind === "index") return `Indexing location ${params.location_id ?? ""}`;
  const op = (job.progress && job.progress.op) || params.op || job.kind;
  return `${op} (job ${job.id})`;
}

export const FINAL = new Set(["completed", "completed_with_errors", "failed", "cancelled"]);
