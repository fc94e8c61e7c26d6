// DOM building and formatting. Pages build their elements with h() and set
// text with textContent only (never innerHTML), so nothing a function
// returns or logs can become markup. No inline style attributes either:
// the server's Content-Security-Policy forbids them; classes do the work.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

export function link(href, text, attrs) {
  return h("a", { href, ...(attrs || {}) }, text);
}

// Numbers always with their unit.
export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms >= 10000) return (ms / 1000).toFixed(1) + " s";
  if (ms >= 100) return Math.round(ms) + " ms";
  if (ms >= 10) return ms.toFixed(1) + " ms";
  return ms.toFixed(2) + " ms";
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return n + " B";
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
}

export function fmtMB(mb) {
  return mb === null || mb === undefined ? "–" : mb + " MB";
}

export function fmtCount(n, unit) {
  if (n === null || n === undefined) return "–";
  const s = Number.isInteger(n) ? n.toLocaleString("en-US") : n.toFixed(2);
  return unit ? s + " " + unit : s;
}

export function fmtCalls(n) {
  return fmtCount(n, n === 1 ? "call" : "calls");
}

export function fmtPct(fraction) {
  if (fraction === null || fraction === undefined || Number.isNaN(fraction)) return "–";
  return (fraction * 100).toFixed(fraction < 0.1 && fraction > 0 ? 1 : 0) + " %";
}

export function fmtMoney(v, currency) {
  if (v === null || v === undefined) return "–";
  const c = currency || "USD";
  if (v === 0) return "0 " + c;
  if (Math.abs(v) < 0.01) return v.toPrecision(3) + " " + c;
  return v.toFixed(2) + " " + c;
}

export function fmtGBs(v) {
  if (v === null || v === undefined) return "–";
  return (v < 1 ? v.toPrecision(3) : v.toFixed(2)) + " GB-s";
}

export function fmtTime(t) {
  if (!t) return "–";
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toLocaleString(undefined, { hour12: false });
}

export function fmtSeconds(s) {
  return s === null || s === undefined ? "–" : s + " s";
}

export function statusBadge(status) {
  return h("span", { class: "badge status-" + String(status || "unknown") }, status || "unknown");
}

export function errorBox(err) {
  const msg = err && err.message ? err.message : String(err);
  return h("p", { class: "error", role: "alert" }, msg);
}

export function loading(text) {
  return h("p", { class: "muted", "aria-busy": "true" }, text || "Loading…");
}

// A definition list of label/value pairs.
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
  );
}

export function table(columns, rows, opts) {
  const o = opts || {};
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: o.class || "" },
      o.caption ? h("caption", {}, o.caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)))),
      h(
        "tbody",
        {},
        rows.length
          ? rows.map((r) => h("tr", {}, columns.map((c) => h("td", { class: c.class, "data-label": c.label }, c.cell(r)))))
          : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, o.empty || "Nothing here.")),
      ),
    ),
  );
}

// Paging through a cursor API: keeps the cursors of the pages seen so
// Previous works too. load(cursor) resolves to {items, next}.
export class CursorPager {
  constructor(load, render) {
    this.load = load;
    this.render = render;
    this.cursors = [null];
    this.index = 0;
    this.next = null;
    this.nav = h("nav", { class: "pager", "aria-label": "pages" });
  }

  async show(index) {
    this.index = index;
    const page = await this.load(this.cursors[index]);
    this.next = page.next || null;
    if (this.next && this.cursors.length === index + 1) this.cursors.push(this.next);
    this.render(page.items);
    replace(
      this.nav,
      h("button", { type: "button", disabled: index === 0, onclick: () => this.show(this.index - 1) }, "← Newer"),
      h("span", { class: "muted" }, "page " + (index + 1)),
      h("button", { type: "button", class: "next-page", disabled: !this.next, onclick: () => this.show(this.index + 1) }, "Older →"),
    );
  }
}

// Pages a list that is already in memory.
export function pagedList(items, pageSize, renderPage) {
  const box = h("div", {});
  const nav = h("nav", { class: "pager", "aria-label": "pages" });
  let page = 0;
  const pages = Math.max(1, Math.ceil(items.length / pageSize));
  function show() {
    renderPage(items.slice(page * pageSize, (page + 1) * pageSize), box);
    replace(
      nav,
      h("button", { type: "button", disabled: page === 0, onclick: () => { page--; show(); } }, "← Previous"),
      h("span", { class: "muted" }, `page ${page + 1} of ${pages} (${items.length} in all)`),
      h("button", { type: "button", disabled: page >= pages - 1, onclick: () => { page++; show(); } }, "Next →"),
    );
  }
  show();
  return h("div", {}, box, pages > 1 ? nav : null);
}

export function pretty(value) {
  if (value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

// JSON with keys sorted at every level, for a diff that does not depend on
// key order.
export function canonical(value) {
  const sort = (v) => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === "object") {
      const out = {};
      for (const k of Object.keys(v).sort()) out[k] = sort(v[k]);
      return out;
    }
    return v;
  };
  return typeof value === "string" ? value : JSON.stringify(sort(value), null, 2);
}

// A line diff (longest common subsequence): [{op: " "|"-"|"+", line}].
export function diffLines(a, b) {
  const x = a.split("\n");
  const y = b.split("\n");
  const n = x.length;
  const m = y.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) {
      out.push({ op: " ", line: x[i++] });
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push({ op: "-", line: x[i++] });
    else out.push({ op: "+", line: y[j++] });
  }
  while (i < n) out.push({ op: "-", line: x[i++] });
  while (j < m) out.push({ op: "+", line: y[j++] });
  return out;
}

export function diffView(before, after) {
  const lines = diffLines(before, after);
  return h(
    "pre",
    { class: "diff" },
    lines.map((d) => h("span", { class: d.op === "-" ? "del" : d.op === "+" ? "add" : "same" }, d.op + " " + d.line + "\n")),
  );
}

export function logLines(lines) {
  return h(
    "pre",
    { class: "logs" },
    lines.map((l) => logLine(l)),
  );
}

export function logLine(l) {
  return h(
    "span",
    { class: "log-line stream-" + (l.stream || "stdout") },
    h("span", { class: "log-time" }, fmtTime(l.time)),
    " ",
    String(l.message).replace(/\r/g, "\n") + "\n",
  );
}
