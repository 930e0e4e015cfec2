// hookstream console: confirmations, "select all" and the live tail. Pages work without it but
// for the tail.
"use strict";

document.addEventListener("submit", function (e) {
  var el = e.submitter && e.submitter.dataset.confirm ? e.submitter : e.target;
  var msg = el.dataset ? el.dataset.confirm : "";
  if (msg && !window.confirm(msg)) { e.preventDefault(); }
});

document.addEventListener("change", function (e) {
  if (e.target.id !== "select-all") { return; }
  document.querySelectorAll('input[name="ids"]').forEach(function (b) { b.checked = e.target.checked; });
});

(function tail() {
  var box = document.getElementById("tail");
  if (!box) { return; }
  var rows = document.getElementById("tail-rows");
  var state = document.getElementById("tail-state");
  var pause = document.getElementById("tail-pause");
  var base = box.dataset.src.split("/tail/events")[0];
  var paused = false, waiting = [], keep = 200;

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    tr.appendChild(td);
  }
  function show(o) {
    var tr = document.createElement("tr");
    var ok = o.result === "delivered";
    tr.className = o.event ? "" : (ok ? "row-ok" : "row-bad");
    cell(tr, (o.at || "").replace("T", " ").slice(0, 23));
    var td = document.createElement("td"), a = document.createElement("a");
    a.href = base + "/streams/" + encodeURIComponent(o.streamId || "");
    a.textContent = (o.streamId || "").slice(0, 12);
    a.className = "mono"; td.appendChild(a); tr.appendChild(td);
    cell(tr, o.event ? "stream " + o.event : o.result, "badge-cell");
    cell(tr, o.statusCode ? String(o.statusCode) : "–", "num");
    cell(tr, o.latencyMs !== undefined ? o.latencyMs.toFixed(1) + " ms" : "", "num");
    cell(tr, o.error || o.reason || (o.attempt ? "attempt " + o.attempt : ""), "snippet");
    rows.insertBefore(tr, rows.firstChild);
    while (rows.children.length > keep) { rows.removeChild(rows.lastChild); }
  }
  function status() {
    state.textContent = paused ? "paused, " + waiting.length + " waiting" : "live";
  }
  var es = new EventSource(box.dataset.src);
  es.addEventListener("open", status);
  es.addEventListener("error", function () { state.textContent = "reconnecting…"; });
  es.addEventListener("outcome", function (ev) {
    var o;
    try { o = JSON.parse(ev.data); } catch (err) { return; }
    if (paused) {
      waiting.push(o);
      if (waiting.length > keep) { waiting.shift(); }
      status();
      return;
    }
    show(o);
  });
  pause.addEventListener("click", function () {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
    if (!paused) { waiting.forEach(show); waiting = []; }
    status();
  });
  document.getElementById("tail-clear").addEventListener("click", function () { rows.textContent = ""; });
})();
