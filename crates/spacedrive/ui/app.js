// The web UI's shell: library and sidebar, routing (the route lives in the URL's hash, so Back
// and Forward work), the details pane, keyboard shortcuts, themes, and live job progress from
// the event stream.

import { call, events, session } from "./api.js";
import { el, clear, shown, bytes, count, dateNs, kindOf, debounce, parseBytes, pathKey, jobProgress, jobTitle, FINAL } from "./util.js";
import * as views from "./views.js";
import * as act from "./actions.js";

const KINDS = ["image", "video", "audio", "document", "book", "archive", "code", "text", "database", "font", "executable", "unknown"];

const app = {
  library: null, // id of the library shown
  libraries: [],
  locations: [],
  tags: [],
  jobs: new Map(),
  tracked: new Map(), // job id → toast node, for jobs started here
  route: null,
  list: null,
  onJob: null,
  viewMode: localStorage.getItem("sd-view") || "list",
  main: document.getElementById("main"),
  details: document.getElementById("details"),
  sidebar: document.getElementById("sidebar"),
  detailRows: [],

  libraryId() { return this.library; },

  locationOf(path) {
    const p = shown(path);
    let best = null;
    for (const l of this.locations) {
      const root = shown(l.path).replace(/\/$/, "");
      if ((p === root || p.startsWith(root + "/")) && (!best || root.length > shown(best.path).length)) best = l;
    }
    return best;
  },

  currentFolder() {
    return this.route && this.route.view === "browse" ? this.route.path : null;
  },

  // Where a thumbnail for `row` is asked for, when the daemon serves them (`session.thumbnails`);
  // rows without one, or whose thumbnail fails to load, show their kind's icon.
  thumbUrl(row) {
    if (!this.session || !this.session.thumbnails) return null;
    if (row.kind !== "file" || !["image", "video", "document", "book"].includes(kindOf(row))) return null;
    if (typeof row.path !== "string") return null;
    return `/api/v1/thumbnail?library=${encodeURIComponent(this.library)}&path=${encodeURIComponent(row.path)}&size=256`;
  },

  go(route, replace) {
    const hash = "#" + encodeURIComponent(JSON.stringify(route));
    if (replace) history.replaceState(null, "", hash); else history.pushState(null, "", hash);
    this.show(route);
  },

  async show(route) {
    this.route = route;
    this.onJob = null;
    this.list = null;
    renderSidebar();
    if (route.view !== "search" && document.activeElement !== searchBox) searchBox.value = "";
    // Each showing renders into its own container: a view still loading when the user moved on
    // fills a detached node, never the page.
    const main = el("div", { class: "view" });
    clear(this.main, main);
    try {
      switch (route.view) {
        case "browse": await views.browse(this, route, main); break;
        case "search": await views.search(this, route, main); break;
        case "dupes": await views.dupes(this, main); break;
        case "jobs": await views.jobs(this, main); break;
        case "history": await views.history(this, main); break;
        case "volumes": await views.volumes(this, main); break;
        case "devices": await views.devices(this, main); break;
        default: await views.home(this, main);
      }
    } catch (e) {
      clear(main, el("div", { class: "page" }, el("p", { class: "problem" }, e.message)));
    }
  },

  async refreshTags() {
    try { this.tags = await call("tag.list", { library: this.library }); } catch (e) { this.tags = []; }
    fillFilterOptions();
    renderSidebar();
  },

  async refreshLocations() {
    try { this.locations = await call("location.list", { library: this.library }); } catch (e) { this.locations = []; }
    fillFilterOptions();
    renderSidebar();
  },

  showDetails(rows, cursor) {
    this.detailRows = rows;
    this.detailCursor = cursor;
    loadDetails();
  },

  refreshDetails() { loadDetails(); },

  // Follows a job started from this page in the tray until it ends.
  trackJob(job, title) {
    const bar = el("div", {}, el("div", { style: "width: 0%" }));
    bar.className = "bar";
    const text = el("div", { class: "muted" }, "starting…");
    const node = el("div", { class: "toast", "data-job": job.id }, el("b", {}, title || jobTitle(job)), text, bar);
    document.getElementById("tray").append(node);
    this.tracked.set(job.id, { node, text, bar, title });
    this.jobs.set(job.id, job);
    updateTracked(job);
  },
};

const searchBox = document.getElementById("search");

// A press anywhere holds the redraws that events cause (a job's progress, a job that ended)
// until its click is through: a redraw between the press and the release would remove the
// pressed node and make the click land nowhere. Held redraws run once, in order, after it.
let pressed = false;
const held = new Map();
document.addEventListener("pointerdown", () => { pressed = true; }, true);
const release = () => {
  if (!pressed) return;
  // After the click that this release makes has been handled.
  setTimeout(() => {
    pressed = false;
    const run = [...held.values()];
    held.clear();
    for (const fn of run) fn();
  }, 0);
};
document.addEventListener("pointerup", release, true);
document.addEventListener("pointercancel", release, true);
app.whenReleased = (key, fn) => {
  if (pressed) held.set(key, fn); else fn();
};

function renderSidebar() {
  if (pressed) { held.set("sidebar", renderSidebar); return; }
  const r = app.route || {};
  const item = (label, route, active, meta, dot) => el("button", {
    class: "side-item" + (active ? " active" : ""), onclick: () => app.go(route),
    "data-view": route.view === "browse" || route.view === "search" ? undefined : route.view,
  }, dot ? el("span", { class: `dot ${dot}` }) : null, el("span", {}, label), meta ? el("span", { class: "meta" }, meta) : null);
  const locs = app.locations.map((l) => {
    const state = !l.online ? "off" : l.state === "indexing" ? "busy" : "on";
    const title = !l.online ? `offline: ${l.offline_reason || ""}` : l.state;
    const b = item(l.name || shown(l.path), { view: "browse", path: l.path },
      r.view === "browse" && app.locationOf(r.path) === l, bytes(l.bytes), state);
    b.title = `${shown(l.path)} — ${title}, ${count(l.files)} files`;
    b.dataset.location = l.id;
    return b;
  });
  const tags = app.tags.map((t) => {
    const b = item(t.path, { view: "search", text: "", filters: { tag: t.path }, title: `Tag: ${t.path}` },
      r.view === "search" && r.filters && r.filters.tag === t.path && !r.text, count(t.entries + t.contents));
    b.prepend(el("span", { class: "dot", style: `background: ${t.color || "var(--muted)"}` }));
    b.dataset.tag = t.path;
    return b;
  });
  clear(app.sidebar,
    el("h3", {}, "Library"),
    item("Overview", { view: "home" }, r.view === "home" || !r.view),
    el("h3", {}, "Locations"),
    locs.length ? locs : el("div", { class: "side-note" }, "None yet: spacedrive location add PATH"),
    el("h3", {}, "Tags", el("button", { class: "ghost", title: "New tag", id: "new-tag", onclick: () => act.createTag(app) }, "+")),
    tags.length ? tags : el("div", { class: "side-note" }, "No tags"),
    el("h3", {}, "Tools"),
    item("Duplicates", { view: "dupes" }, r.view === "dupes"),
    item("Jobs", { view: "jobs" }, r.view === "jobs", runningCount() || null),
    item("History", { view: "history" }, r.view === "history"),
    el("h3", {}, "Places"),
    item("Volumes", { view: "volumes" }, r.view === "volumes"),
    item("Devices", { view: "devices" }, r.view === "devices"));
}

function runningCount() {
  let n = 0;
  for (const j of app.jobs.values()) if (!FINAL.has(j.state)) n++;
  return n;
}

let detailSeq = 0;
const loadDetails = debounce(async () => {
  const seq = ++detailSeq;
  const rows = app.detailRows || [];
  const d = app.details;
  if (!rows.length) { clear(d, el("p", { class: "muted" }, "Select a file to see its details.")); return; }
  if (rows.length > 1) {
    const total = rows.reduce((a, r) => a + (r.size || 0), 0);
    clear(d, el("h2", {}, `${rows.length} items selected`), el("p", {}, `${bytes(total)} in all`),
      el("p", { class: "muted" }, "Copy, move, tag or trash them with the toolbar."));
    return;
  }
  const row = rows[0];
  let info;
  try {
    info = await call("file.info", { library: app.library, path: row.path });
  } catch (e) {
    if (seq === detailSeq) clear(d, el("h2", {}, shown(row.name)), el("p", { class: "muted" }, e.message));
    return;
  }
  if (seq !== detailSeq) return;
  const e = info.entry, c = info.content, a = info.attached || {};
  const chips = (list, content) => list.map((t) => {
    const tag = app.tags.find((x) => x.path === t);
    return el("span", { class: "chip", "data-tag": t }, el("span", { class: "swatch", style: `background: ${(tag && tag.color) || "var(--muted)"}` }), t,
      el("button", { title: `Remove ${t}`, onclick: async () => {
        try {
          await call("action.commit", { library: app.library, action: { action: "tag_remove", params: { tag: t, paths: [row.path], content } } });
          await app.refreshTags();
          loadDetails();
        } catch (err) { act.toast(err.message, "error"); }
      } }, "×"));
  });
  const note = el("textarea", { id: "note", placeholder: "A note about this file" });
  note.value = a.note || "";
  const fav = el("input", { type: "checkbox", id: "favorite", checked: a.favorite, onchange: () => act.mark(app, [row], "favorite", fav.checked) });
  const hid = el("input", { type: "checkbox", id: "hidden", checked: a.hidden, onchange: () => act.mark(app, [row], "hide", hid.checked) });
  clear(d,
    el("h2", {}, shown(e.name)),
    el("dl", {},
      el("dt", {}, "Kind"), el("dd", {}, c ? c.kind : kindOf({ ...e, content_kind: null })),
      c && c.mime ? [el("dt", {}, "MIME"), el("dd", {}, c.mime)] : null,
      el("dt", {}, "Size"), el("dd", {}, `${bytes(e.size)}${e.kind === "dir" ? ` (${count(e.files)} files, ${count(e.dirs)} folders)` : ""}`),
      el("dt", {}, "Modified"), el("dd", {}, dateNs(e.mtime)),
      el("dt", {}, "Path"), el("dd", {}, shown(e.path)),
      c ? [el("dt", {}, "cas_id"), el("dd", { id: "cas-id" }, c.cas_id)] : null,
      c ? [el("dt", {}, "Copies"), el("dd", {}, String(c.copies))] : null,
      c && c.integrity ? [el("dt", {}, "BLAKE3"), el("dd", {}, c.integrity.slice(0, 16) + "…")] : null),
    c && c.other_copies.length ? el("div", { class: "section" }, el("h4", {}, "Other copies"),
      c.other_copies.map((p) => el("div", {}, el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); app.go({ view: "browse", path: shownParent(p), select: p }); } }, shown(p))))) : null,
    el("div", { class: "section" }, el("h4", {}, "Tags"),
      el("div", { class: "chips", id: "detail-tags" }, chips(a.tags || [], false), chips(a.content_tags || [], true),
        el("button", { class: "ghost", onclick: () => act.tagSelection(app, [row]) }, "+ tag"))),
    el("div", { class: "section" }, el("label", {}, fav, " Favourite"), " ", el("label", {}, hid, " Hidden")),
    el("div", { class: "section" }, el("h4", {}, "Note"), note,
      el("button", { class: "ghost", onclick: () => act.saveNote(app, row, note.value) }, "Save note"),
      a.content_note ? el("p", { class: "muted" }, `On every copy: ${a.content_note}`) : null));
}, 120);

function shownParent(p) {
  const s = shown(p);
  return s.slice(0, s.lastIndexOf("/")) || "/";
}

function updateTracked(job) {
  const t = app.tracked.get(job.id);
  if (!t) return;
  const { frac, text } = jobProgress(job);
  const final = FINAL.has(job.state);
  t.bar.firstChild.style.width = `${final ? 100 : Math.round((frac || 0) * 100)}%`;
  t.text.textContent = `${job.state.replace(/_/g, " ")}${text ? " · " + text : ""}${job.error ? " · " + job.error : ""}`;
  t.node.dataset.state = job.state;
  if (final) {
    app.tracked.delete(job.id);
    if (job.state !== "completed") t.node.classList.add("error");
    setTimeout(() => t.node.remove(), 6000);
    // What the job changed shows now: the folder, the locations' sizes, the history.
    const route = app.route;
    if (route && ["browse", "search", "history", "dupes"].includes(route.view)) {
      app.whenReleased("show", () => { if (app.route === route) app.show(route); });
    }
    app.refreshLocations();
  }
}

function onEvent(line) {
  if (!line.event || line.event.type !== "job") return;
  const j = line.event.data;
  const before = app.jobs.get(j.id);
  app.jobs.set(j.id, j);
  updateTracked(j);
  if (app.onJob) app.onJob(j);
  if (j.kind === "index" && (!before || before.state !== j.state) && FINAL.has(j.state)) app.refreshLocations();
  if (!before || FINAL.has(j.state) !== FINAL.has(before.state)) renderSidebar();
}

// Search: as the user types (150 ms after the last key), with the filter fields.
function filters() {
  const v = (id) => document.getElementById(id).value.trim();
  const f = {};
  try {
    if (v("f-kind")) f.kind = v("f-kind");
    if (v("f-ext")) f.ext = v("f-ext");
    const l = parseBytes(v("f-larger")), s = parseBytes(v("f-smaller"));
    if (l !== null) f.larger = l;
    if (s !== null) f.smaller = s;
  } catch (e) {
    act.toast(e.message, "error");
  }
  const day = (id) => { const x = v(id); return x ? new Date(x + "T00:00:00").getTime() * 1e6 : null; };
  if (day("f-after")) f.after = day("f-after");
  if (day("f-before")) f.before = day("f-before");
  if (v("f-tag")) f.tag = v("f-tag");
  if (v("f-location")) f.location = v("f-location");
  return f;
}

let beforeSearch = null;
const runSearch = debounce(() => {
  const text = searchBox.value.trim();
  const f = filters();
  const order = document.getElementById("f-order").value;
  if (!text && !Object.keys(f).length) {
    if (app.route && app.route.view === "search") app.go(beforeSearch || { view: "home" }, true);
    return;
  }
  if (!app.route || app.route.view !== "search") beforeSearch = app.route;
  const route = { view: "search", text, filters: f, order };
  app.go(route, app.route && app.route.view === "search");
}, 150);

function fillFilterOptions() {
  const kind = document.getElementById("f-kind");
  if (kind.options.length === 1) for (const k of KINDS) kind.append(el("option", { value: k }, k));
  const keep = (sel, items) => {
    const cur = sel.value;
    clear(sel, sel.options[0], items);
    sel.value = cur;
  };
  keep(document.getElementById("f-tag"), app.tags.map((t) => el("option", { value: t.path }, t.path)));
  keep(document.getElementById("f-location"), app.locations.map((l) => el("option", { value: String(l.id) }, l.name || shown(l.path))));
}

function keyboard(e) {
  if (document.getElementById("modal-root").childElementCount) return;
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  if (e.key === "/" && !typing) { e.preventDefault(); searchBox.focus(); searchBox.select(); return; }
  if (typing) {
    if (e.key === "Escape" && document.activeElement === searchBox) { searchBox.blur(); app.list && app.list.node.focus(); }
    if (e.key === "ArrowDown" && document.activeElement === searchBox && app.list) { e.preventDefault(); app.list.node.focus(); }
    return;
  }
  const list = app.list;
  if (list && list.key(e)) { e.preventDefault(); return; }
  const targets = list ? list.targets() : [];
  switch (e.key) {
    case "Backspace":
    case "ArrowLeft":
      if (e.key === "ArrowLeft" && !e.altKey) return;
      if (app.route && app.route.view === "browse") {
        const loc = app.locationOf(app.route.path);
        if (loc && shown(loc.path) !== shown(app.route.path)) {
          e.preventDefault();
          const p = shown(app.route.path);
          app.go({ view: "browse", path: p.slice(0, p.lastIndexOf("/")) || "/", select: p });
        }
      }
      return;
    case "Delete": e.preventDefault(); act.trash(app, targets); return;
    case "F2": e.preventDefault(); act.rename(app, targets[0]); return;
    case "c": if (!e.ctrlKey && !e.metaKey) { act.copyOrMove(app, targets, false); } return;
    case "m": act.copyOrMove(app, targets, true); return;
    case "t": act.tagSelection(app, targets); return;
    case "g": toggleView(); return;
    default:
  }
}

function toggleView() {
  app.viewMode = app.viewMode === "grid" ? "list" : "grid";
  localStorage.setItem("sd-view", app.viewMode);
  document.getElementById("view-toggle").textContent = app.viewMode === "grid" ? "List" : "Grid";
  if (app.list) app.list.setMode(app.viewMode);
}

function applyTheme(theme) {
  const t = theme || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  document.documentElement.dataset.theme = t;
}

async function loadLibrary() {
  // One round trip for the three: the first render waits on them.
  const jobs = call("job.list", { library: app.library, limit: 50 }).catch(() => [] /* no library yet */);
  const [, , list] = await Promise.all([app.refreshLocations(), app.refreshTags(), jobs]);
  for (const j of list) app.jobs.set(j.id, j);
  renderSidebar();
}

async function start() {
  applyTheme(localStorage.getItem("sd-theme"));
  document.getElementById("theme-toggle").onclick = () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    localStorage.setItem("sd-theme", next);
    applyTheme(next);
  };
  document.getElementById("view-toggle").textContent = app.viewMode === "grid" ? "List" : "Grid";
  document.getElementById("view-toggle").onclick = toggleView;
  const ft = document.getElementById("filters-toggle");
  ft.onclick = () => {
    const f = document.getElementById("filters");
    f.hidden = !f.hidden;
    ft.setAttribute("aria-expanded", String(!f.hidden));
  };
  document.getElementById("search-form").onsubmit = (e) => { e.preventDefault(); runSearch(); };
  searchBox.addEventListener("input", runSearch);
  for (const id of ["f-kind", "f-ext", "f-larger", "f-smaller", "f-after", "f-before", "f-tag", "f-location", "f-order"]) {
    document.getElementById(id).addEventListener(id.startsWith("f-") && document.getElementById(id).tagName === "INPUT" ? "input" : "change", runSearch);
  }
  document.getElementById("f-clear").onclick = () => {
    for (const id of ["f-kind", "f-ext", "f-larger", "f-smaller", "f-after", "f-before", "f-tag", "f-location"]) document.getElementById(id).value = "";
    runSearch();
  };
  document.addEventListener("keydown", keyboard);
  window.addEventListener("popstate", () => app.show(routeFromHash()));

  clear(app.details, el("p", { class: "muted" }, "Select a file to see its details."));
  // The session and the libraries in one round trip.
  const libraries = call("library.list").catch(() => []);
  const s = await session();
  app.session = s;
  if (s && s.beyond_loopback) {
    const b = document.getElementById("banner");
    b.hidden = false;
    b.textContent = `This daemon listens on ${s.listen}, reachable from other machines. Every request needs the token; keep the login URL private.`;
  }
  app.libraries = await libraries;
  const sel = document.getElementById("library");
  const def = app.libraries.find((l) => l.default && l.status === "open") || app.libraries.find((l) => l.status === "open");
  app.library = localStorage.getItem("sd-library") && app.libraries.some((l) => l.id === localStorage.getItem("sd-library") && l.status === "open")
    ? localStorage.getItem("sd-library") : def ? def.id : null;
  const fillLibraries = () => {
    clear(sel, app.libraries.map((l) => el("option", { value: l.id || "", disabled: !["open", "locked"].includes(l.status) },
      l.name + (l.status === "open" && l.encrypted ? " (encrypted)" : l.status !== "open" ? ` (${l.status})` : ""))));
    if (app.library) sel.value = app.library;
  };
  fillLibraries();
  sel.onchange = async () => {
    const chosen = app.libraries.find((l) => l.id === sel.value);
    if (chosen && chosen.status === "locked" && !(await unlock(chosen))) {
      sel.value = app.library || "";
      return;
    }
    app.libraries = await call("library.list");
    app.library = sel.value;
    fillLibraries();
    localStorage.setItem("sd-library", app.library);
    await loadLibrary();
    app.go({ view: "home" });
  };
  await loadLibrary();
  events(onEvent);
  app.show(routeFromHash());
}

// Asks for an encrypted library's passphrase and unlocks it; true once it is open.
async function unlock(lib) {
  const pass = el("input", { type: "password", autocomplete: "current-password", "aria-label": "Passphrase" });
  const remember = el("input", { type: "checkbox" });
  const problem = el("p", { class: "problem", hidden: true });
  const done = await act.modal({
    title: `Unlock ${lib.name}`,
    body: el("div", {},
      el("p", {}, "This library is encrypted. Its passphrase opens it until the daemon stops."),
      el("label", { class: "field" }, "Passphrase", pass),
      el("label", {}, remember, " Remember its key on this device (a file only you can read)"),
      problem),
    buttons: [{ label: "Cancel", value: null }, {
      label: "Unlock", value: true, check: async () => {
        try {
          await call("library.unlock", { library: lib.id, passphrase: pass.value, remember: remember.checked });
          return true;
        } catch (e) {
          problem.hidden = false;
          problem.textContent = e.message;
          pass.select();
          return false;
        }
      },
    }],
    onOpen: (box, close, btns) => {
      pass.addEventListener("keydown", (e) => { if (e.key === "Enter") btns[btns.length - 1].click(); });
    },
  });
  return done === true;
}

function routeFromHash() {
  try {
    if (location.hash.length > 1) return JSON.parse(decodeURIComponent(location.hash.slice(1)));
  } catch (e) { /* not ours */ }
  return app.locations.length ? { view: "browse", path: app.locations[0].path } : { view: "home" };
}

window.spacedrive = app; // for the console (and the browser test's assertions)
start();
