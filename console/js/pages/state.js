// KV stores and volumes: sizes, and a store's keys a page at a time with
// one value shown.

import { enc, getJSON, request } from "../api.js";
import { CursorPager, errorBox, fmtBytes, fmtCount, fmtMB, fmtTime, h, link, loading, pagedList, replace, table } from "../ui.js";

const PAGE = 50;

async function showValue(store, key, box) {
  replace(box, loading());
  try {
    const resp = await request("GET", `/v1/kv/${enc(store)}/${key.split("/").map(enc).join("/")}`);
    const type = resp.headers.get("Content-Type") || "";
    const buf = new Uint8Array(await resp.arrayBuffer());
    let text;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(buf);
      if (type.includes("json")) text = JSON.stringify(JSON.parse(text), null, 2);
    } catch (_) {
      text = "(" + fmtBytes(buf.length) + " of binary data)";
    }
    replace(
      box,
      h("h3", {}, key),
      h("p", { class: "muted" }, type + ", " + fmtBytes(buf.length) + ", version " + (resp.headers.get("ETag") || "–") + (resp.headers.get("X-Mayfly-Expires") ? ", expires " + fmtTime(resp.headers.get("X-Mayfly-Expires")) : "")),
      h("pre", { class: "payload", id: "kv-value" }, text),
    );
  } catch (e) {
    replace(box, errorBox(e));
  }
}

async function storePage(main, store) {
  const stats = await getJSON(`/v1/kv/${enc(store)}/_stats`);
  const list = h("div", {});
  const valueBox = h("section", { class: "card", "aria-live": "polite" }, h("p", { class: "muted" }, "Pick a key to see its value."));
  const prefix = h("input", { id: "kv-prefix", type: "text", placeholder: "prefix" });
  const pager = new CursorPager(
    async (cursor) => {
      const page = await getJSON(`/v1/kv/${enc(store)}`, { limit: PAGE, cursor, prefix: prefix.value });
      return { items: page.keys, next: page.next };
    },
    (items) =>
      replace(
        list,
        table(
          [
            { label: "Key", cell: (k) => h("button", { type: "button", class: "link kv-key", onclick: () => showValue(store, k.key, valueBox) }, k.key) },
            { label: "Size", class: "num", cell: (k) => fmtBytes(k.size) },
            { label: "Version", class: "num", cell: (k) => String(k.version) },
            { label: "Expires", cell: (k) => (k.expires ? fmtTime(k.expires) : "never") },
          ],
          items,
          { empty: "No keys." },
        ),
      ),
  );
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/state" }, "KV & volumes"), " / "),
    h("h1", {}, "KV store ", store),
    h("p", {}, fmtCount(stats.keys, "keys") + ", " + fmtBytes(stats.bytes) + "; " + fmtCount(stats.reads, "reads") + ", " + fmtCount(stats.writes, "writes")),
    h("form", { class: "row", onsubmit: (ev) => { ev.preventDefault(); pager.cursors = [null]; pager.show(0); } }, h("label", { for: "kv-prefix" }, "Keys starting with "), prefix, h("button", { type: "submit" }, "Show")),
    h("div", { class: "cols" }, h("div", {}, list, pager.nav), valueBox),
  );
  await pager.show(0);
}

export async function render(main, { store } = {}) {
  if (store) {
    await storePage(main, store);
    return null;
  }
  replace(main, h("h1", {}, "KV stores and volumes"), loading());
  const [kv, vols] = await Promise.all([getJSON("/v1/kv"), getJSON("/v1/volumes")]);
  replace(
    main,
    h("h1", {}, "KV stores and volumes"),
    h("h2", {}, "KV stores"),
    pagedList(kv.stores, 20, (page, box) =>
      replace(
        box,
        table(
          [
            { label: "Store", cell: (s) => link("#/kv/" + enc(s.name), s.name) },
            { label: "Keys", class: "num", cell: (s) => fmtCount(s.keys, "keys") },
            { label: "Size", class: "num", cell: (s) => fmtBytes(s.bytes) },
          ],
          page,
          { empty: "No KV stores: a store exists once a key is written." },
        ),
      ),
    ),
    h("h2", {}, "Volumes"),
    pagedList(vols.volumes, 20, (page, box) =>
      replace(
        box,
        table(
          [
            { label: "Volume", cell: (v) => v.name },
            { label: "Size", class: "num", cell: (v) => fmtMB(v.size_mb) },
            { label: "Used", class: "num", cell: (v) => (v.used_bytes === undefined ? "–" : fmtBytes(v.used_bytes)) },
            { label: "Mounted by", cell: (v) => (v.functions && v.functions.length ? v.functions.join(", ") : "no function") },
            { label: "Created", cell: (v) => fmtTime(v.created) },
          ],
          page,
          { empty: "No volumes." },
        ),
      ),
    ),
  );
  return null;
}
