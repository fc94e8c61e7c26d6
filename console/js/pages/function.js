// One function: a tab bar over its settings and charts, its code, the
// invoke form, its records, live logs, triggers, dead letters and sizing.

import { enc, getJSON } from "../api.js";
import { errorBox, h, loading, replace } from "../ui.js";
import * as overview from "./fn_overview.js";
import * as code from "./fn_code.js";
import * as invoke from "./fn_invoke.js";
import * as records from "./fn_records.js";
import * as logs from "./fn_logs.js";
import * as triggers from "./fn_triggers.js";
import * as deadLetters from "./fn_dead_letters.js";
import * as sizing from "./fn_sizing.js";

const TABS = [
  ["overview", "Overview", overview],
  ["code", "Code", code],
  ["invoke", "Invoke", invoke],
  ["records", "Records", records],
  ["logs", "Logs", logs],
  ["triggers", "URL, schedules, topics", triggers],
  ["dead-letters", "Dead letters", deadLetters],
  ["sizing", "Sizing", sizing],
];

export async function render(main, { name, tab }) {
  const panel = h("section", { id: "tab-panel", class: "tab-panel", role: "region", "aria-label": tab }, loading());
  const base = "#/functions/" + enc(name);
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/functions" }, "Functions"), " / "),
    h("h1", {}, name),
    h(
      "nav",
      { class: "tabs", "aria-label": "function sections" },
      TABS.map(([id, label]) => h("a", { href: base + "/" + id, "aria-current": id === tab ? "page" : null, id: "tab-" + id }, label)),
    ),
    panel,
  );
  const entry = TABS.find((t) => t[0] === tab);
  if (!entry) {
    replace(panel, errorBox("No tab " + tab));
    return null;
  }
  let fn;
  try {
    fn = await getJSON("/v1/functions/" + enc(name));
  } catch (e) {
    replace(panel, errorBox(e));
    return null;
  }
  return entry[2].render(panel, fn);
}
