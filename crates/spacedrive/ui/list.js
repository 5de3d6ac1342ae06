// A virtual list (or grid) of entries: only the rows in view are in the DOM, so a folder of
// 100,000 entries scrolls as smoothly as one of ten. Rows arrive in pages: when the view nears
// the end of what is loaded and there is more, `fetchMore` is asked for the next page.

import { el, clear, shown, bytes, dateNs, kindOf, icon, pathKey, parentOf } from "./util.js";

const ROW = 30;
const TILE_W = 140, TILE_H = 158;

export class FileList {
  // columns: [{key, label, sort?}]; opts: {mode, sort, onSort, onOpen, onSelect, fetchMore, thumb}
  constructor(opts) {
    this.opts = opts;
    this.rows = [];
    this.more = false;
    this.loading = false;
    this.selected = new Set();
    this.cursor = -1;
    this.anchor = -1;
    this.mode = opts.mode || "list";
    this.scroller = el("div", { class: "list", tabindex: "0", role: "grid", "aria-label": "Files" });
    this.head = el("div", { class: `list-head ${opts.cls}`, role: "row" });
    this.canvas = el("div", { class: "canvas", style: "position: relative" });
    this.scroller.append(this.head, this.canvas);
    this.scroller.addEventListener("scroll", () => this.paint());
    new ResizeObserver(() => this.paint()).observe(this.scroller);
    this.renderHead();
  }

  get node() { return this.scroller; }

  renderHead() {
    if (this.mode === "grid") { this.head.hidden = true; return; }
    this.head.hidden = false;
    clear(this.head, this.opts.columns.map((c) =>
      el("button", {
        class: (this.opts.sort === c.key ? "sorted " : "") + (c.num ? "num" : ""),
        disabled: !c.sort,
        title: c.sort ? `Sort by ${c.label.toLowerCase()}` : undefined,
        onclick: () => c.sort && this.opts.onSort && this.opts.onSort(c.key),
        "data-col": c.key,
      }, c.label + (this.opts.sort === c.key ? (c.key === "name" || c.key === "kind" || c.key === "relevance" ? " ↑" : " ↓") : "")),
    ));
  }

  setMode(mode) {
    this.mode = mode;
    this.renderHead();
    this.paint();
  }

  setRows(rows, more) {
    this.rows = rows;
    this.more = more;
    this.selected.clear();
    this.cursor = rows.length ? 0 : -1;
    this.anchor = this.cursor;
    this.scroller.scrollTop = 0;
    this.paint();
    this.changed();
    // The first rows on screen, for bench/ui.sh (navigation timing: ms since the page started).
    if (!performance.getEntriesByName("sd-first-rows").length) {
      requestAnimationFrame(() => performance.mark("sd-first-rows"));
    }
  }

  append(rows, more) {
    this.rows = this.rows.concat(rows);
    this.more = more;
    this.paint();
  }

  selection() {
    return this.rows.filter((r) => this.selected.has(pathKey(r.path)));
  }

  // The selected rows, or the row under the cursor when nothing is selected.
  targets() {
    const s = this.selection();
    if (s.length) return s;
    return this.cursor >= 0 && this.rows[this.cursor] ? [this.rows[this.cursor]] : [];
  }

  changed() {
    this.opts.onSelect && this.opts.onSelect(this.targets(), this.rows[this.cursor]);
  }

  perRow() {
    return this.mode === "grid" ? Math.max(1, Math.floor((this.scroller.clientWidth - 16) / TILE_W)) : 1;
  }

  paint() {
    const n = this.rows.length;
    const per = this.perRow();
    const h = this.mode === "grid" ? TILE_H : ROW;
    const lines = Math.ceil(n / per);
    const headH = this.mode === "grid" ? 0 : this.head.offsetHeight;
    this.canvas.style.height = `${lines * h + (this.more ? h : 0)}px`;
    const top = Math.max(0, this.scroller.scrollTop - headH);
    const first = Math.max(0, Math.floor(top / h) - 5);
    const last = Math.min(lines, Math.ceil((top + this.scroller.clientHeight) / h) + 5);
    const nodes = [];
    for (let line = first; line < last; line++) {
      for (let j = 0; j < per; j++) {
        const i = line * per + j;
        if (i >= n) break;
        nodes.push(this.mode === "grid" ? this.tile(i, line, j) : this.row(i, line));
      }
    }
    if (!n) nodes.push(el("div", { class: "empty" }, this.loading ? "Loading…" : this.opts.empty || "Nothing here"));
    clear(this.canvas, nodes);
    if (this.more && !this.loading && last * per >= n - per * 20) this.loadMore();
  }

  async loadMore() {
    if (!this.opts.fetchMore) return;
    this.loading = true;
    try {
      const { rows, more } = await this.opts.fetchMore(this.rows.length);
      this.loading = false;
      this.append(rows, more);
    } catch (e) {
      this.loading = false;
      this.more = false;
      this.paint();
      throw e;
    }
  }

  classes(i, base) {
    const r = this.rows[i];
    return base + (this.selected.has(pathKey(r.path)) ? " selected" : "") + (i === this.cursor ? " cursor" : "");
  }

  cells(r) {
    return this.opts.columns.map((c) => {
      switch (c.key) {
        case "name": return el("div", { class: "name", title: shown(r.path) }, icon(r), el("span", {}, shown(r.name)));
        case "folder": return el("div", { class: "muted", title: parentOf(r.path) }, parentOf(r.path));
        case "size": return el("div", { class: "num" }, r.kind === "symlink" ? "" : bytes(r.size));
        case "modified": return el("div", { class: "muted" }, dateNs(r.mtime));
        case "kind": return el("div", { class: "muted" }, kindOf(r));
        default: return el("div", {}, "");
      }
    });
  }

  row(i, line) {
    const r = this.rows[i];
    return el("div", {
      class: this.classes(i, `row ${this.opts.cls}`), role: "row", style: `top: ${line * ROW}px`,
      "data-index": i, "data-name": shown(r.name), "aria-selected": this.selected.has(pathKey(r.path)) ? "true" : "false",
      onclick: (e) => this.click(i, e), ondblclick: () => this.open(i),
    }, this.cells(r));
  }

  tile(i, line, j) {
    const r = this.rows[i];
    const thumb = el("div", { class: "thumb" });
    const fallback = icon(r, true);
    const url = this.opts.thumb && this.opts.thumb(r);
    if (url) {
      const img = el("img", { src: url, alt: "", loading: "lazy" });
      img.addEventListener("error", () => img.replaceWith(fallback));
      thumb.append(img);
    } else {
      thumb.append(fallback);
    }
    return el("div", {
      class: this.classes(i, "tile"), style: `top: ${line * TILE_H}px; left: ${8 + j * TILE_W}px`,
      "data-index": i, "data-name": shown(r.name), title: shown(r.path),
      onclick: (e) => this.click(i, e), ondblclick: () => this.open(i),
    }, thumb, el("div", { class: "label" }, shown(r.name)));
  }

  click(i, e) {
    const key = pathKey(this.rows[i].path);
    if (e.shiftKey && this.anchor >= 0) {
      this.selectRange(this.anchor, i, e.ctrlKey || e.metaKey);
    } else if (e.ctrlKey || e.metaKey) {
      this.selected.has(key) ? this.selected.delete(key) : this.selected.add(key);
      this.anchor = i;
    } else {
      this.selected.clear();
      this.selected.add(key);
      this.anchor = i;
    }
    this.cursor = i;
    this.scroller.focus({ preventScroll: true });
    this.paint();
    this.changed();
  }

  selectRange(a, b, keep) {
    if (!keep) this.selected.clear();
    for (let k = Math.min(a, b); k <= Math.max(a, b); k++) this.selected.add(pathKey(this.rows[k].path));
  }

  open(i) {
    if (this.rows[i]) this.opts.onOpen && this.opts.onOpen(this.rows[i]);
  }

  // Keyboard: arrows move (shift extends the selection), Home/End, PageUp/PageDown, Enter
  // opens, Ctrl+A selects all, Escape clears. Returns whether the key was used.
  key(e) {
    const n = this.rows.length;
    if (!n) return false;
    const per = this.perRow();
    const page = Math.max(1, Math.floor(this.scroller.clientHeight / (this.mode === "grid" ? TILE_H : ROW))) * per;
    let to = null;
    switch (e.key) {
      case "ArrowDown": to = this.cursor + per; break;
      case "ArrowUp": to = this.cursor - per; break;
      case "ArrowRight": if (this.mode === "grid") to = this.cursor + 1; break;
      case "ArrowLeft": if (this.mode === "grid") to = this.cursor - 1; break;
      case "PageDown": to = this.cursor + page; break;
      case "PageUp": to = this.cursor - page; break;
      case "Home": to = 0; break;
      case "End": to = n - 1; break;
      case "Enter": this.open(this.cursor); return true;
      case "Escape": this.selected.clear(); this.paint(); this.changed(); return true;
      case "a": if (e.ctrlKey || e.metaKey) { this.selectRange(0, n - 1); this.paint(); this.changed(); return true; } return false;
      case " ": {
        const k = pathKey(this.rows[this.cursor].path);
        this.selected.has(k) ? this.selected.delete(k) : this.selected.add(k);
        this.paint(); this.changed(); return true;
      }
      default: return false;
    }
    if (to === null) return false;
    to = Math.max(0, Math.min(n - 1, to));
    if (e.shiftKey) {
      if (this.anchor < 0) this.anchor = this.cursor;
      this.selectRange(this.anchor, to);
    } else {
      this.selected.clear();
      this.selected.add(pathKey(this.rows[to].path));
      this.anchor = to;
    }
    this.cursor = to;
    this.reveal(to);
    this.paint();
    this.changed();
    return true;
  }

  reveal(i) {
    const per = this.perRow();
    const h = this.mode === "grid" ? TILE_H : ROW;
    const headH = this.mode === "grid" ? 0 : this.head.offsetHeight;
    const y = Math.floor(i / per) * h + headH;
    const s = this.scroller;
    if (y < s.scrollTop + headH) s.scrollTop = y - headH;
    else if (y + h > s.scrollTop + s.clientHeight) s.scrollTop = y + h - s.clientHeight;
  }
}
