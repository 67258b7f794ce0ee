// tracepost console: plain JS, no dependencies. Everything captured is inserted as text
// (textContent) or as HTML the server escaped.
"use strict";
(function () {
  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  // Copy buttons: data-copy names the element whose text to copy.
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("[data-copy]");
    if (!b) return;
    var src = document.getElementById(b.getAttribute("data-copy"));
    if (!src) return;
    var text = src.textContent;
    var done = function () { b.textContent = "Copied"; setTimeout(function () { b.textContent = "Copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { select(src); });
    } else { select(src); }
  });
  function select(el) {
    var r = document.createRange(); r.selectNodeContents(el);
    var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
  }

  // Keyset infinite scroll: a.more-link[data-next] is fetched as rows when it comes into view.
  function watchMore() {
    var link = document.querySelector("a.more-link");
    if (!link || !("IntersectionObserver" in window)) return;
    var busy = false;
    var io = new IntersectionObserver(function (entries) {
      if (!entries.some(function (e) { return e.isIntersecting; }) || busy) return;
      busy = true;
      var url = link.getAttribute("href") + "&fragment=1";
      fetch(url, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      }).then(function (html) {
        io.disconnect();
        var holder = document.createElement("tbody");
        holder.innerHTML = html; // server-rendered, escaped by the server
        var tbody = document.querySelector("table.events tbody");
        var more = holder.querySelector("tr.more-row");
        if (more) more.remove();
        while (holder.firstChild) tbody.appendChild(holder.firstChild);
        var oldRow = link.closest("tr.more-row") || link.parentElement;
        if (more) { oldRow.replaceWith(more); } else { oldRow.remove(); }
        watchMore();
      }).catch(function (e) { link.textContent = "Load failed (" + e.message + "): click to retry"; busy = false; });
    });
    io.observe(link);
  }
  watchMore();

  // The live tail.
  var log = document.getElementById("tail-log");
  if (log) {
    var body = log.querySelector("tbody");
    var status = document.getElementById("tail-status");
    var pauseBtn = document.getElementById("tail-pause");
    var paused = false, held = [], es = null, max = 500;
    var base = log.getAttribute("data-base");
    // Characters that change what a reader sees without being seen, written as escapes: the
    // set and the format of the server's pages (tracepost_core::escape_control_multiline),
    // since these rows are built here from the stream's JSON.
    var HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
    function visible(text) {
      return String(text).replace(HIDDEN, function (c) {
        var n = c.charCodeAt(0);
        if (c === "\r") return "\\r";
        return n < 0x80 ? "\\x" + ("0" + n.toString(16)).slice(-2) : "\\u{" + n.toString(16) + "}";
      });
    }
    function cell(tr, text, cls) { var td = document.createElement("td"); if (cls) td.className = cls; td.textContent = visible(text); tr.appendChild(td); return td; }
    function add(tr) { body.insertBefore(tr, body.firstChild); while (body.children.length > max) body.removeChild(body.lastChild); }
    function row(e) {
      var tr = document.createElement("tr"); tr.className = "new";
      cell(tr, (e.timestamp || "").replace("T", " ").slice(0, 23), "mono dim");
      var lv = cell(tr, ""); var s = document.createElement("span"); s.className = "lvl lvl-" + e.level; s.textContent = visible(e.level); lv.appendChild(s);
      cell(tr, e.kind); cell(tr, e.service || "");
      var m = cell(tr, "", "msg"); var a = document.createElement("a");
      a.href = base + "/event/" + encodeURIComponent(e.id); a.textContent = visible(e.message); m.appendChild(a);
      return tr;
    }
    function connect() {
      es = new EventSource(log.getAttribute("data-src"));
      es.addEventListener("open", function () { status.textContent = "live"; status.className = "ok"; });
      es.addEventListener("error", function () { status.textContent = "reconnecting…"; status.className = "warn"; });
      es.addEventListener("event", function (m) {
        var e = JSON.parse(m.data);
        if (paused) { held.push(e); if (held.length > max) held.shift(); pauseBtn.textContent = "Resume (" + held.length + ")"; return; }
        add(row(e));
      });
      es.addEventListener("missed", function (m) {
        var n = JSON.parse(m.data).missed;
        var tr = document.createElement("tr"); tr.className = "missed";
        var td = cell(tr, "missed " + n + " events (this view fell behind)"); td.colSpan = 5;
        add(tr);
      });
    }
    pauseBtn.addEventListener("click", function () {
      paused = !paused;
      if (!paused) { held.forEach(function (e) { add(row(e)); }); held = []; pauseBtn.textContent = "Pause"; status.textContent = "live"; }
      else { pauseBtn.textContent = "Resume"; status.textContent = "paused"; status.className = "warn"; }
    });
    connect();
  }
})();
