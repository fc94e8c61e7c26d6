// A function's code: its package's digest and sizes, its files a page at a
// time (GET …/code/files), and the package as a zip (GET …/code). The
// download needs the bearer token, which a plain link cannot send, so the
// zip is fetched here and handed to the browser as a blob: URL.

import { enc, getJSON, request } from "../api.js";
import { errorBox, facts, fmtBytes, fmtCount, h, loading, replace, table } from "../ui.js";

const PAGE = 50;

function pathCell(f) {
  const shown = f.type === "dir" ? f.path + "/" : f.path;
  if (f.type !== "symlink") return h("code", {}, shown);
  return [h("code", {}, shown), h("span", { class: "muted" }, " → "), h("code", {}, f.target)];
}

function fileTable(files) {
  return table(
    [
      { label: "Path", cell: pathCell },
      { label: "Type", cell: (f) => f.type },
      { label: "Mode", cell: (f) => h("code", {}, f.mode) },
      { label: "Size", class: "num", cell: (f) => (f.type === "dir" ? "–" : fmtBytes(f.size)) },
    ],
    files,
    { class: "code-files", empty: "The package holds no files." },
  );
}

// The file list, paged by the API's cursor: the cursors of the pages seen
// are kept so Previous works too.
function filePager(fn, summary) {
  const box = h("div", { id: "code-files" }, loading());
  const nav = h("nav", { class: "pager", "aria-label": "file pages" });
  const cursors = [null];
  let index = 0;
  async function show(i) {
    replace(box, loading());
    let page;
    try {
      page = await getJSON(`/v1/functions/${enc(fn.name)}/code/files`, { limit: PAGE, after: cursors[i] });
    } catch (e) {
      replace(box, errorBox(e));
      return;
    }
    index = i;
    if (page.next && cursors.length === i + 1) cursors.push(page.next);
    replace(summary, fmtCount(page.total, page.total === 1 ? "entry" : "entries"));
    replace(box, fileTable(page.files));
    const pages = Math.max(1, Math.ceil(page.total / PAGE));
    replace(
      nav,
      h("button", { type: "button", id: "code-prev", disabled: index === 0, onclick: () => show(index - 1) }, "← Previous"),
      h("span", { class: "muted" }, `page ${index + 1} of ${pages}`),
      h("button", { type: "button", id: "code-next", disabled: !page.next, onclick: () => show(index + 1) }, "Next →"),
    );
  }
  show(0);
  return h("div", {}, box, nav);
}

async function download(fn, status, button) {
  button.disabled = true;
  replace(status, "Downloading…");
  try {
    const resp = await request("GET", `/v1/functions/${enc(fn.name)}/code`);
    const blob = await resp.blob();
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: fn.name + ".zip", hidden: true });
    document.body.appendChild(a);
    a.click();
    a.remove();
    // The browser has taken the bytes once the click's download starts;
    // the URL is let go a little later rather than at once.
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    replace(status, "Saved " + fn.name + ".zip (" + fmtBytes(blob.size) + ")");
  } catch (e) {
    replace(status, errorBox(e));
  } finally {
    button.disabled = false;
  }
}

export function render(panel, fn) {
  const summary = h("span", { id: "code-count" }, "–");
  const status = h("span", { id: "code-download-status", class: "muted", role: "status", "aria-live": "polite" });
  const button = h("button", { type: "button", id: "code-download", class: "primary" }, "Download " + fn.name + ".zip");
  button.addEventListener("click", () => download(fn, status, button));
  replace(
    panel,
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Package"),
      facts([
        ["SHA-256", h("code", { class: "hash", id: "code-sha" }, fn.code_sha256 || "–")],
        ["Zip size", fn.zip_size ? fmtBytes(fn.zip_size) : "–"],
        ["Unpacked size", h("span", { id: "code-size" }, fmtBytes(fn.code_size))],
        ["Files", summary],
      ]),
      h("div", { class: "row" }, button, status),
    ),
    h("section", {}, h("h2", {}, "Files"), filePager(fn, summary)),
  );
  return null;
}
