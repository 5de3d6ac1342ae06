// Actions on a selection. Every file operation goes preview → confirm → commit: the preview
// modal shows the plan the daemon will run (steps, conflicts, bytes, free space), nothing
// changes until the user confirms, then the job's progress shows in the tray.

import { call } from "./api.js";
import { el, clear, shown, bytes, count, baseName, parentOf } from "./util.js";

// Opens a modal; resolves with the value of the button pressed (null for Escape / Cancel).
export function modal({ title, body, buttons, onOpen }) {
  return new Promise((resolve) => {
    const root = document.getElementById("modal-root");
    const before = document.activeElement;
    const close = (v) => {
      clear(root);
      document.removeEventListener("keydown", onKey, true);
      if (before && before.focus) before.focus();
      resolve(v);
    };
    const onKey = (e) => {
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); close(null); }
    };
    document.addEventListener("keydown", onKey, true);
    const btns = (buttons || [{ label: "Close", value: null }]).map((b) =>
      el("button", { class: b.cls || (b.value === null ? "ghost" : ""), "data-value": String(b.value), disabled: b.disabled,
        onclick: async () => { if (b.check && !(await b.check())) return; close(b.value); } }, b.label));
    const box = el("div", { class: "modal", role: "dialog", "aria-modal": "true", "aria-label": title },
      el("h2", {}, title), el("div", { class: "content" }, body), el("div", { class: "buttons" }, btns));
    const back = el("div", { class: "modal-back", onclick: (e) => { if (e.target === back) close(null); } }, box);
    clear(root, back);
    const focus = box.querySelector("input, select, textarea") || btns[btns.length - 1];
    focus && focus.focus();
    onOpen && onOpen(box, close, btns);
  });
}

export function toast(text, kind) {
  const t = el("div", { class: `toast ${kind || ""}` }, text);
  document.getElementById("tray").append(t);
  setTimeout(() => t.remove(), kind === "error" ? 9000 : 4000);
}

const STEP_WORDS = { mkdir: "make folder", merge: "merge into", copy: "copy", link: "hard link", symlink: "symlink",
  rename: "rename", trash: "trash", delete: "delete", restore: "restore", skip: "skip", conflict: "CONFLICT" };

// The preview of a file operation, as a DOM fragment.
function planView(preview) {
  const p = preview.plan;
  if (!p) return el("ul", {}, (preview.effects || []).map((x) => el("li", {}, x)));
  const short = (p.space || []).filter((s) => !s.ok);
  const steps = p.steps || [];
  const shownSteps = steps.slice(0, 300);
  return el("div", { class: "preview" },
    el("div", { class: "summary" },
      el("span", {}, el("b", {}, count(p.files)), " files"),
      el("span", {}, el("b", {}, count(p.dirs)), " folders"),
      el("span", {}, el("b", {}, bytes(p.bytes))),
      el("span", {}, el("b", { class: p.conflicts ? "problem" : "" }, count(p.conflicts)), " conflicts"),
      p.skipped ? el("span", {}, el("b", {}, count(p.skipped)), " skipped") : null,
      el("span", {}, "strategy ", el("b", {}, p.strategy || "")),
      el("span", {}, preview.undoable ? "undoable" : el("b", { class: "problem" }, "cannot be undone")),
    ),
    p.unresolved ? el("p", { class: "problem" }, `${p.unresolved} conflicts need a choice: pick what to do with existing files below.`) : null,
    short.map((s) => el("p", { class: "problem" }, `Not enough space in ${shown(s.path)}: needs ${bytes(s.needed)}, ${bytes(s.available)} free.`)),
    (p.blocked || []).map((b) => el("p", { class: "problem" }, `${shown(b.path)}: ${b.message}`)),
    (p.warnings || []).map((w) => el("p", { class: "muted" }, w)),
    el("div", { class: "steps", "aria-label": "Steps" }, shownSteps.map((s) =>
      el("div", { class: s.op === "conflict" ? "problem" : "" },
        `${STEP_WORDS[s.op] || s.op}  ${shown(s.src)}${s.dst ? "  →  " + shown(s.dst) : ""}${s.size ? "  (" + bytes(s.size) + ")" : ""}`)),
      steps.length > shownSteps.length ? el("div", { class: "muted" }, `… and ${count(steps.length - shownSteps.length)} more steps`) : null),
  );
}

function blocking(preview) {
  const p = preview.plan;
  if (!p) return null;
  if (p.unresolved) return "choose what to do with the conflicts";
  if ((p.space || []).some((s) => !s.ok)) return "not enough space";
  if ((p.blocked || []).length) return "a folder refuses writes";
  return null;
}

// Preview → confirm → commit for `action` (with a conflict policy choice where it applies).
// Resolves with the commit's answer, or null when the user cancelled.
export async function previewAndCommit(app, title, makeAction, { policy = true, danger = false } = {}) {
  let onConflict = "ask";
  let preview;
  try {
    preview = await call("action.preview", { library: app.library, action: makeAction(onConflict) });
  } catch (e) {
    toast(e.message, "error");
    return null;
  }
  const holder = el("div", {}, planView(preview));
  const why = el("p", { class: "problem" }, blocking(preview) || "");
  const select = el("select", { id: "on-conflict" },
    ["ask", "skip", "keep-both", "overwrite"].map((v) => el("option", { value: v }, {
      ask: "ask (stop on conflicts)", skip: "skip existing", "keep-both": "keep both (rename the new one)", overwrite: "overwrite files",
    }[v])));
  const body = el("div", {},
    policy ? el("label", { class: "field" }, "When a name already exists", select) : null, why, holder);
  const answer = await modal({
    title, body,
    buttons: [{ label: "Cancel", value: null }, { label: "Confirm", value: "go", cls: danger ? "danger" : "" }],
    onOpen: (box, close, btns) => {
      const confirm = btns[btns.length - 1];
      confirm.id = "confirm";
      confirm.disabled = !!blocking(preview);
      select.addEventListener("change", async () => {
        onConflict = select.value;
        try {
          preview = await call("action.preview", { library: app.library, action: makeAction(onConflict) });
          clear(holder, planView(preview));
          why.textContent = blocking(preview) || "";
          confirm.disabled = !!blocking(preview);
        } catch (e) {
          why.textContent = e.message;
          confirm.disabled = true;
        }
      });
    },
  });
  if (answer !== "go") return null;
  try {
    const done = await call("action.commit", { library: app.library, action: makeAction(onConflict) });
    if (done && done.job) app.trackJob(done.job, title);
    else toast(`${title}: done`);
    return done;
  } catch (e) {
    toast(e.message, "error");
    return null;
  }
}

// A folder picker: type a path, or browse the library's locations.
export async function pickFolder(app, title, start) {
  const input = el("input", { id: "dest", value: shown(start || ""), spellcheck: "false" });
  const list = el("div", { class: "picker" });
  const go = async (path) => {
    input.value = shown(path);
    try {
      const l = await call("entries.list", { library: app.library, path, recursive: false, sort: "name", limit: 500 });
      const dirs = l.entries.filter((e) => e.kind === "dir");
      clear(list,
        el("button", { onclick: () => go(parentOf(path)) }, ".. (up)"),
        dirs.map((d) => el("button", { onclick: () => go(d.path) }, "▸ " + shown(d.name))));
    } catch (e) {
      clear(list, app.locations.map((loc) => el("button", { onclick: () => go(loc.path) }, "▸ " + shown(loc.path))));
    }
  };
  go(start || (app.locations[0] && app.locations[0].path) || "/");
  const answer = await modal({
    title, body: el("div", {}, el("label", { class: "field" }, "Destination folder", input), list),
    buttons: [{ label: "Cancel", value: null }, { label: "Next: preview", value: "ok" }],
  });
  return answer === "ok" && input.value.trim() ? input.value.trim() : null;
}

export async function copyOrMove(app, rows, move) {
  if (!rows.length) return;
  const dest = await pickFolder(app, `${move ? "Move" : "Copy"} ${rows.length === 1 ? baseName(rows[0].path) : rows.length + " items"} to…`, app.currentFolder());
  if (!dest) return;
  const sources = rows.map((r) => r.path);
  return previewAndCommit(app, `${move ? "Move" : "Copy"} to ${dest}`,
    (on_conflict) => ({ action: move ? "move" : "copy", params: { sources, dest, on_conflict } }));
}

export async function rename(app, row) {
  if (!row) return;
  const input = el("input", { id: "new-name", value: shown(row.name), spellcheck: "false" });
  const answer = await modal({
    title: `Rename ${shown(row.name)}`, body: el("label", { class: "field" }, "New name", input),
    buttons: [{ label: "Cancel", value: null }, { label: "Next: preview", value: "ok" }],
    onOpen: () => { const s = input.value, dot = s.lastIndexOf("."); input.setSelectionRange(0, dot > 0 ? dot : s.length); },
  });
  const name = input.value;
  if (answer !== "ok" || !name || name === shown(row.name)) return;
  return previewAndCommit(app, `Rename to ${name}`,
    (on_conflict) => ({ action: "rename", params: { path: row.path, name, on_conflict } }));
}

export async function trash(app, rows) {
  if (!rows.length) return;
  return previewAndCommit(app, `Move ${rows.length === 1 ? baseName(rows[0].path) : rows.length + " items"} to the trash`,
    () => ({ action: "delete", params: { paths: rows.map((r) => r.path), permanent: false } }), { policy: false, danger: true });
}

export async function undo(app, id, what) {
  return previewAndCommit(app, `Undo ${what || (id ? "#" + id : "the last action")}`,
    () => ({ action: "undo", params: { id } }), { policy: false });
}

// Tag a selection: pick an existing tag or name a new one (created with its colour first).
export async function tagSelection(app, rows) {
  if (!rows.length) return;
  const existing = el("select", { id: "tag-pick" }, el("option", { value: "" }, "— new tag —"),
    app.tags.map((t) => el("option", { value: t.path }, t.path)));
  const name = el("input", { id: "tag-name", placeholder: "Work/Invoices", spellcheck: "false" });
  const color = el("input", { id: "tag-color", type: "color", value: "#2f6fde" });
  const content = el("input", { id: "tag-content", type: "checkbox" });
  const answer = await modal({
    title: `Tags for ${rows.length === 1 ? baseName(rows[0].path) : rows.length + " items"}`,
    body: el("div", {},
      el("label", { class: "field" }, "Tag", existing),
      el("label", { class: "field" }, "New tag (a path makes a hierarchy)", name),
      el("label", { class: "field" }, "Colour of a new tag", color),
      el("label", {}, content, " on the content: every copy of these files")),
    buttons: [{ label: "Cancel", value: null }, { label: "Remove", value: "remove", cls: "ghost" }, { label: "Apply", value: "apply" }],
  });
  if (!answer) return;
  let tag = existing.value;
  try {
    if (!tag) {
      tag = name.value.trim();
      if (!tag) return;
      if (answer === "apply" && !app.tags.some((t) => t.path === tag)) {
        await call("action.commit", { library: app.library, action: { action: "tag_create", params: { path: tag, color: color.value, namespace: null } } });
      }
    }
    const r = await call("action.commit", { library: app.library, action: {
      action: answer === "apply" ? "tag_apply" : "tag_remove",
      params: { tag, paths: rows.map((x) => x.path), content: content.checked } } });
    toast(answer === "apply" ? `Tagged ${count(r.added)} with ${tag}` : `Removed ${tag} from ${count(r.removed)}`);
    await app.refreshTags();
    app.refreshDetails();
  } catch (e) {
    toast(e.message, "error");
  }
}

export async function createTag(app) {
  const name = el("input", { id: "tag-name", placeholder: "Work/Invoices" });
  const color = el("input", { type: "color", value: "#2f6fde" });
  const answer = await modal({ title: "New tag",
    body: el("div", {}, el("label", { class: "field" }, "Name (a path makes a hierarchy)", name), el("label", { class: "field" }, "Colour", color)),
    buttons: [{ label: "Cancel", value: null }, { label: "Create", value: "ok" }] });
  if (answer !== "ok" || !name.value.trim()) return;
  try {
    await call("action.commit", { library: app.library, action: { action: "tag_create", params: { path: name.value.trim(), color: color.value, namespace: null } } });
    await app.refreshTags();
  } catch (e) {
    toast(e.message, "error");
  }
}

export async function mark(app, rows, what, on) {
  try {
    await call("action.commit", { library: app.library, action: { action: what, params: { paths: rows.map((r) => r.path), content: false, on } } });
    app.refreshDetails();
  } catch (e) {
    toast(e.message, "error");
  }
}

export async function saveNote(app, row, text) {
  try {
    await call("action.commit", { library: app.library, action: { action: "note", params: { path: row.path, content: false, text: text || null } } });
    toast("Note saved");
  } catch (e) {
    toast(e.message, "error");
  }
}
