// The pages of the main area: a folder, search results, duplicates, jobs, history, volumes
// and devices. Each renders into `main` from API calls; lists are FileLists (virtual).

import { call } from "./api.js";
import { el, clear, shown, bytes, count, dateMs, parentOf, jobProgress, jobTitle, FINAL } from "./util.js";
import { FileList } from "./list.js";
import * as act from "./actions.js";

const PAGE = 500;

function actionBar(app, list) {
  const t = () => list.targets();
  return [
    el("button", { class: "ghost", id: "act-copy", title: "Copy to… (c)", onclick: () => act.copyOrMove(app, t(), false) }, "Copy"),
    el("button", { class: "ghost", id: "act-move", title: "Move to… (m)", onclick: () => act.copyOrMove(app, t(), true) }, "Move"),
    el("button", { class: "ghost", id: "act-rename", title: "Rename (F2)", onclick: () => act.rename(app, t()[0]) }, "Rename"),
    el("button", { class: "ghost", id: "act-tag", title: "Tags (t)", onclick: () => act.tagSelection(app, t()) }, "Tag"),
    el("button", { class: "ghost", id: "act-trash", title: "Move to trash (Delete)", onclick: () => act.trash(app, t()) }, "Trash"),
  ];
}

function listColumns(search) {
  const cols = [{ key: "name", label: "Name", sort: true }];
  if (search) cols.push({ key: "folder", label: "Folder" });
  cols.push({ key: "size", label: "Size", sort: true, num: true }, { key: "modified", label: "Modified", sort: true },
    { key: "kind", label: "Kind", sort: !search });
  return cols;
}

// A folder of the index: breadcrumbs, sortable columns, pages of 500 entries.
export async function browse(app, route, main) {
  const path = route.path;
  const sort = route.sort || "name";
  const loc = app.locationOf(path);
  const crumbs = el("div", { class: "crumbs", "aria-label": "Breadcrumbs" });
  if (loc) {
    const root = shown(loc.path);
    const rel = shown(path).slice(root.length).split("/").filter(Boolean);
    crumbs.append(el("button", { onclick: () => app.go({ view: "browse", path: loc.path }) }, loc.name || root));
    let acc = root;
    for (const part of rel) {
      acc = `${acc.replace(/\/$/, "")}/${part}`;
      const target = acc;
      crumbs.append(el("span", { class: "sep" }, "›"), el("button", { onclick: () => app.go({ view: "browse", path: target }) }, part));
    }
  } else {
    crumbs.append(el("span", {}, shown(path)));
  }
  const status = el("div", { class: "status" }, "Loading…");
  const fetchPage = async (offset) => {
    const l = await call("entries.list", { library: app.library, path, recursive: false, sort, limit: PAGE, offset });
    return { rows: l.entries, more: l.truncated, listing: l };
  };
  const list = new FileList({
    columns: listColumns(false), cls: "cols", sort, mode: app.viewMode,
    empty: "This folder is empty",
    onSort: (key) => app.go({ ...route, sort: key }, true),
    onOpen: (row) => row.kind === "dir" ? app.go({ view: "browse", path: row.path }) : app.showDetails([row], row),
    onSelect: (rows, cur) => app.showDetails(rows, cur),
    fetchMore: fetchPage,
    thumb: (row) => app.thumbUrl(row),
  });
  app.list = list;
  clear(main,
    el("div", { class: "toolbar" }, crumbs, el("span", { class: "spacer" }), actionBar(app, list),
      el("button", { class: "ghost", title: "Rescan this location", onclick: async () => {
        if (!loc) return;
        try { const s = await call("location.rescan", { library: app.library, id: loc.id }); app.trackJob({ id: s.job_id, kind: "index", state: "queued" }, `Rescan ${loc.name}`); } catch (e) { act.toast(e.message, "error"); }
      } }, "Rescan")),
    list.node, status);
  list.loading = true;
  const first = await fetchPage(0);
  list.loading = false;
  const e = first.listing.entry;
  status.textContent = `${shown(e.path)} · ${count(e.files)} files, ${count(e.dirs)} folders, ${bytes(e.size)} in all`
    + (first.more ? ` · showing pages of ${PAGE}` : "");
  list.setRows(first.rows, first.more);
  const keep = route.select;
  if (keep) {
    const i = first.rows.findIndex((r) => shown(r.path) === shown(keep));
    if (i >= 0) { list.cursor = i; list.selected.add(`s:${shown(keep)}`); list.reveal(i); list.paint(); list.changed(); }
  }
  list.node.focus({ preventScroll: true });
}

// The query of a search route, from the search box and the filter fields.
export function searchQuery(route) {
  const q = { text: route.text || "", limit: 200, offset: 0, order: route.order || "relevance" };
  const f = route.filters || {};
  if (f.kind) q.kinds = [f.kind];
  if (f.ext) q.extensions = f.ext.split(/[\s,]+/).filter(Boolean).map((x) => x.replace(/^\./, "").toLowerCase());
  if (f.larger != null) q.larger_than = f.larger;
  if (f.smaller != null) q.smaller_than = f.smaller;
  if (f.after) q.modified_after = f.after;
  if (f.before) q.modified_before = f.before;
  if (f.tag) q.tags = [f.tag];
  if (f.location) q.locations = [Number(f.location)];
  return q;
}

export async function search(app, route, main) {
  const query = searchQuery(route);
  const status = el("div", { class: "status", id: "search-status" }, "Searching…");
  const fetchPage = async (offset) => {
    const r = await call("search", { library: app.library, query: { ...query, offset } });
    return { rows: r.hits, more: offset + r.hits.length < r.total, results: r };
  };
  const orderKey = { relevance: "relevance", name: "name", size: "size", modified: "modified" }[query.order];
  const list = new FileList({
    columns: listColumns(true), cls: "search-cols", sort: orderKey, mode: app.viewMode,
    empty: "No file matches",
    onSort: (key) => app.go({ ...route, order: key }, true),
    onOpen: (row) => row.kind === "dir" ? app.go({ view: "browse", path: row.path })
      : app.go({ view: "browse", path: parentOf(row.path), select: row.path }),
    onSelect: (rows, cur) => app.showDetails(rows, cur),
    fetchMore: fetchPage,
    thumb: (row) => app.thumbUrl(row),
  });
  app.list = list;
  const title = route.title || (route.text ? `Search: ${route.text}` : "Search");
  clear(main, el("div", { class: "toolbar" }, el("div", { class: "crumbs" }, el("b", {}, title)), el("span", { class: "spacer" }), actionBar(app, list)),
    list.node, status);
  try {
    const first = await fetchPage(0);
    if (app.route !== route) return; // a newer search replaced this one
    status.textContent = `${count(first.results.total)} results in ${(first.results.took_us / 1000).toFixed(1)} ms`;
    list.setRows(first.rows, first.more);
  } catch (e) {
    status.textContent = e.message;
    status.classList.add("problem");
  }
}

export async function dupes(app, main) {
  clear(main, el("div", { class: "page" }, el("h1", {}, "Duplicates"), el("p", { class: "muted" }, "Looking for identical files (full-file BLAKE3 confirms every group)…")));
  let r;
  try {
    r = await call("dupes.find", { library: app.library, path: null, min_size: 1 });
  } catch (e) {
    clear(main, el("div", { class: "page" }, el("h1", {}, "Duplicates"), el("p", { class: "problem" }, e.message)));
    return;
  }
  const picked = new Set();
  const trashBtn = el("button", { class: "danger", id: "dupes-trash", disabled: true, onclick: async () => {
    const rows = [...picked].map((p) => ({ path: p }));
    if (await act.trash(app, rows)) app.go({ view: "dupes" }, true);
  } }, "Move selected to trash");
  const groups = r.groups.slice(0, 500).map((g) => el("div", { class: "group" },
    el("header", {}, el("b", {}, `${g.files.length} copies × ${bytes(g.size)}`), el("span", { class: "muted" }, `${bytes(g.wasted)} wasted`),
      el("span", { class: "muted" }, g.integrity ? "confirmed (full hash)" : "confirmed (whole file ≤ 100 KiB)"),
      el("button", { class: "ghost", onclick: (e) => {
        // Keep the first copy, pick the others.
        const boxes = e.target.closest(".group").querySelectorAll("input[type=checkbox]");
        boxes.forEach((b, i) => { b.checked = i > 0; b.dispatchEvent(new Event("change")); });
      } }, "Keep first, pick others")),
    g.files.map((f) => {
      const box = el("input", { type: "checkbox", onchange: () => { box.checked ? picked.add(shown(f)) : picked.delete(shown(f)); trashBtn.disabled = picked.size === 0; trashBtn.textContent = `Move ${picked.size} to trash`; } });
      return el("label", {}, box, shown(f));
    })));
  clear(main, el("div", { class: "page" },
    el("h1", {}, "Duplicates"),
    el("p", {}, `${count(r.groups.length)} groups, ${count(r.redundant_files)} redundant files, `, el("b", {}, `${bytes(r.wasted_bytes)} wasted`), ` (${r.duration_ms} ms).`),
    r.unconfirmed && r.unconfirmed.length ? el("p", { class: "muted" }, `${r.unconfirmed.length} files could not be read to confirm and are left out.`) : null,
    el("p", {}, trashBtn),
    r.groups.length ? groups : el("p", { class: "empty" }, "No duplicates."),
    r.groups.length > 500 ? el("p", { class: "muted" }, `The ${count(r.groups.length - 500)} smallest groups are not shown.`) : null));
}

function jobRow(app, j) {
  const { frac, text } = jobProgress(j);
  const running = j.state === "running", paused = j.state === "paused";
  const ctl = async (m) => { try { await call(m, { library: j.library_id, id: j.id }); } catch (e) { act.toast(e.message, "error"); } };
  return el("div", { class: "job", "data-job": j.id },
    el("div", {}, el("b", {}, jobTitle(j)), " ", el("span", { class: `state ${j.state}` }, j.state.replace(/_/g, " "))),
    el("div", { class: "controls" },
      running ? el("button", { class: "ghost", onclick: () => ctl("job.pause") }, "Pause") : null,
      paused ? el("button", { class: "ghost", onclick: () => ctl("job.resume") }, "Resume") : null,
      !FINAL.has(j.state) ? el("button", { class: "ghost", onclick: () => ctl("job.cancel") }, "Cancel") : null),
    el("div", { class: "bar", style: "grid-column: 1 / -1" }, el("div", { style: `width: ${FINAL.has(j.state) ? 100 : Math.round((frac || 0) * 100)}%` })),
    el("div", { class: "muted", style: "grid-column: 1 / -1" }, text, j.error ? el("div", { class: "problem" }, j.error) : null,
      ` · created ${dateMs(j.created_at)}`));
}

export async function jobs(app, main) {
  const holder = el("div", {});
  clear(main, el("div", { class: "page" }, el("h1", {}, "Jobs"), holder));
  const render = async () => {
    try {
      const list = await call("job.list", { library: app.library, limit: 100 });
      for (const j of list) app.jobs.set(j.id, { ...app.jobs.get(j.id), ...j });
    } catch (e) { act.toast(e.message, "error"); }
    const all = [...app.jobs.values()].filter((j) => j.library_id === undefined || j.library_id === app.libraryId())
      .sort((a, b) => b.id - a.id);
    clear(holder, all.length ? all.map((j) => jobRow(app, j)) : el("p", { class: "empty" }, "No jobs yet."));
  };
  app.onJob = (j) => app.whenReleased(`job ${j.id}`, () => {
    if (!holder.isConnected) return; // the user has gone elsewhere meanwhile
    const old = holder.querySelector(`[data-job="${j.id}"]`);
    if (old) old.replaceWith(jobRow(app, app.jobs.get(j.id) || j)); else render();
  });
  await render();
}

// Shows the history again after an undo, unless the user has gone elsewhere meanwhile (a
// delayed redraw must never take them back).
function stillOnHistory(app) {
  app.whenReleased("history", () => {
    if (app.route && app.route.view === "history") app.go({ view: "history" }, true);
  });
}

export async function history(app, main) {
  let rows;
  try {
    rows = await call("audit.list", { library: app.library, limit: 200 });
  } catch (e) {
    clear(main, el("div", { class: "page" }, el("h1", {}, "History"), el("p", { class: "problem" }, e.message)));
    return;
  }
  const describe = (r) => {
    const s = r.summary || {};
    if (typeof s === "string") return s;
    if (s.effect) return s.effect;
    return (r.targets || []).slice(0, 3).join(", ") + ((r.targets || []).length > 3 ? ` and ${r.targets.length - 3} more` : "");
  };
  const next = rows.find((r) => r.next_undo);
  clear(main, el("div", { class: "page" },
    el("h1", {}, "History"),
    el("p", {}, el("button", { id: "undo-last", disabled: !next, onclick: async () => {
      if (await act.undo(app, null, next ? `${next.kind} #${next.id}` : "")) setTimeout(() => stillOnHistory(app), 300);
    } }, next ? `Undo last: ${next.kind} #${next.id}` : "Nothing to undo"), " ", el("span", { class: "muted" }, "Every action, newest first; the log is hash-chained (audit.verify).")),
    el("table", { class: "plain" },
      el("thead", {}, el("tr", {}, ["#", "When", "Action", "What", "Result", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((r) => el("tr", { "data-audit": r.id },
        el("td", {}, String(r.id)), el("td", { class: "muted" }, dateMs(r.created_at)),
        el("td", {}, r.kind, r.role !== "action" ? el("span", { class: "muted" }, ` (${r.role}${r.undoes ? " of #" + r.undoes : ""})`) : null),
        el("td", {}, describe(r)),
        el("td", {}, el("span", { class: `state ${r.result}` }, r.result.replace(/_/g, " ")), r.undone_by ? el("span", { class: "muted" }, ` undone by #${r.undone_by}`) : null),
        el("td", {}, r.undoable ? el("button", { class: "ghost", "data-undo": r.id, onclick: async () => {
          if (await act.undo(app, r.id, `${r.kind} #${r.id}`)) setTimeout(() => stillOnHistory(app), 300);
        } }, r.role === "undo" ? "Redo" : "Undo") : null)))))));
}

export async function volumes(app, main) {
  const v = await call("volume.list", { library: app.library });
  const tracked = new Map(v.tracked.map((t) => [t.fingerprint, t]));
  clear(main, el("div", { class: "page" }, el("h1", {}, "Volumes"),
    el("table", { class: "plain" },
      el("thead", {}, el("tr", {}, ["Name", "Mounted at", "Kind", "Filesystem", "Free", "Capacity", "Locations"].map((h) => el("th", {}, h)))),
      el("tbody", {}, v.mounted.filter((m) => m.kind !== "virtual").map((m) => {
        const t = tracked.get(m.fingerprint);
        return el("tr", {}, el("td", {}, m.name || ""), el("td", {}, shown(m.mount_point)), el("td", {}, `${m.kind}, ${m.storage_class}`),
          el("td", {}, m.fs_type), el("td", {}, bytes(m.free)), el("td", {}, bytes(m.capacity)), el("td", {}, t ? String(t.locations) : ""));
      }),
      v.tracked.filter((t) => !t.online).map((t) => el("tr", { class: "muted" }, el("td", {}, t.name || t.fingerprint),
        el("td", {}, `offline (last at ${shown(t.mount_point)})`), el("td", {}, t.kind), el("td", {}, t.fs_type), el("td", {}, ""),
        el("td", {}, bytes(t.capacity)), el("td", {}, String(t.locations))))))));
}

export async function devices(app, main) {
  let list, status;
  try {
    [status, list] = await Promise.all([call("network.status"), call("network.devices")]);
  } catch (e) {
    clear(main, el("div", { class: "page" }, el("h1", {}, "Devices"), el("p", { class: "muted" }, e.message)));
    return;
  }
  clear(main, el("div", { class: "page" }, el("h1", {}, "Devices"),
    el("p", { class: "muted" }, `This device: ${status.device_id} · LAN discovery ${status.discovery ? "on" : "off"} · ${status.nearby} nearby`),
    list.length ? el("table", { class: "plain" },
      el("thead", {}, el("tr", {}, ["Name", "OS", "State", "Paired", "Last seen"].map((h) => el("th", {}, h)))),
      el("tbody", {}, list.map((d) => el("tr", {}, el("td", {}, d.name), el("td", {}, d.os),
        el("td", {}, d.online ? `online${d.latency_ms != null ? ` (${d.latency_ms.toFixed(1)} ms)` : ""}` : "offline"),
        el("td", {}, dateMs(d.paired_at)), el("td", {}, dateMs(d.last_seen))))))
      : el("p", {}, "No paired devices. Pair one with ", el("code", {}, "spacedrive network pair generate"), ".")));
}

export async function home(app, main) {
  let info = null;
  try { info = await call("library.info", { library: app.library }); } catch (e) { /* no library yet */ }
  clear(main, el("div", { class: "page" },
    el("h1", {}, info ? info.name : "Welcome to Spacedrive"),
    info ? el("p", {}, `${count(info.locations)} locations, ${count(info.entries)} entries, ${count(info.contents)} distinct contents; the library takes ${bytes(info.disk_bytes)} on disk.`)
      : el("p", {}, "No library yet. Add a folder with ", el("code", {}, "spacedrive location add PATH"), "."),
    el("p", { class: "muted" }, "Keys: ", el("span", { class: "kbd" }, "/"), " search · ", el("span", { class: "kbd" }, "↑↓"), " move · ",
      el("span", { class: "kbd" }, "Enter"), " open · ", el("span", { class: "kbd" }, "Backspace"), " up · ", el("span", { class: "kbd" }, "F2"), " rename · ",
      el("span", { class: "kbd" }, "Delete"), " trash · ", el("span", { class: "kbd" }, "c"), "/", el("span", { class: "kbd" }, "m"), " copy/move · ",
      el("span", { class: "kbd" }, "t"), " tag · ", el("span", { class: "kbd" }, "g"), " grid")));
}
