// Live logs: the recent lines, then new ones as they come, the way
// `mayfly logs NAME --follow` reads them (the API's follow=1 NDJSON
// stream). Leaving the tab aborts the stream.

import { enc, streamLines } from "../api.js";
import { errorBox, h, logLine, replace } from "../ui.js";

const KEEP = 2000; // lines shown at most; older ones scroll away

export function render(panel, fn) {
  const pre = h("pre", { class: "logs live", id: "live-logs", tabindex: "0", "aria-label": "log lines", "aria-live": "off" });
  const state = h("span", { id: "follow-state", class: "muted", "aria-live": "polite" });
  const toggle = h("button", { type: "button", id: "follow-toggle" }, "Pause");
  replace(panel, h("div", { class: "row" }, h("h2", {}, "Live logs"), toggle, state), pre);
  let controller = null;
  let count = 0;
  function start() {
    const mine = new AbortController();
    controller = mine;
    replace(state, "following…");
    toggle.textContent = "Pause";
    // Lines of the last five minutes first, then every new one.
    const since = new Date(Date.now() - 5 * 60 * 1000).toISOString();
    streamLines(
      `/v1/functions/${enc(fn.name)}/logs`,
      { follow: 1, since },
      (line) => {
        const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.appendChild(logLine(line));
        count++;
        while (pre.childNodes.length > KEEP) pre.removeChild(pre.firstChild);
        replace(state, "following, " + count + (count === 1 ? " line" : " lines"));
        if (stick) pre.scrollTop = pre.scrollHeight;
      },
      mine.signal,
    ).then(
      () => {
        if (!mine.signal.aborted) replace(state, "the server ended the stream");
      },
      (e) => {
        if (!mine.signal.aborted) replace(state, errorBox(e));
      },
    );
  }
  function stop() {
    if (controller) controller.abort();
    controller = null;
    replace(state, "paused");
    toggle.textContent = "Follow";
  }
  toggle.addEventListener("click", () => (controller ? stop() : start()));
  start();
  return stop;
}
