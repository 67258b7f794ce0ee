// tracepost replay viewer: loads a recorded session's segments in order from
// BASE/v1/replay/{session}/{segment} (gzip, decoded by the browser), plays them in
// rrweb-player (loaded before this script), and seeks from the side panel and the timeline.
// window.__tpReplay = {player, state, events, reopens} for tests: state is loading, ready,
// playing, finished or failed; reopens counts rewrites of the replay frame's document.
"use strict";
(function () {
  var root = document.getElementById("replay");
  if (!root) return;
  var status = document.getElementById("replay-status");
  var base = root.getAttribute("data-base");
  var sid = root.getAttribute("data-session");
  var list = root.getAttribute("data-segments");
  var segments = list ? list.split(",").map(Number) : [];
  var duration = Number(root.getAttribute("data-duration")) || 0;
  var start = Number(root.getAttribute("data-t")) || 0;
  var state = (window.__tpReplay = { player: null, state: "loading", events: 0, reopens: 0 });

  function say(text) { if (status) status.textContent = text; }
  function set(s) { state.state = s; root.setAttribute("data-state", s); }
  function fmt(ms) {
    var s = Math.floor(ms / 1000), m = Math.floor(s / 60);
    return m + ":" + String(s % 60).padStart(2, "0");
  }

  // Timeline ticks: placed by offset (CSSOM styles are allowed by the page's CSP).
  var ticks = document.querySelectorAll("#replay-track .tick");
  for (var i = 0; i < ticks.length; i++) {
    var off = Number(ticks[i].getAttribute("data-offset"));
    ticks[i].style.left = (duration > 0 ? Math.min(100, (off / duration) * 100) : 0) + "%";
  }

  function seek(ms) {
    if (!state.player) return false;
    state.player.goto(ms, true);
    set("playing");
    if (window.history && history.replaceState) history.replaceState(null, "", "?t=" + ms);
    return true;
  }
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest("[data-offset]");
    if (!a || !state.player) return;
    ev.preventDefault();
    seek(Number(a.getAttribute("data-offset")));
  });

  // The replay is rebuilt in a sandboxed iframe where no script runs; inline event handler
  // attributes (onclick=…), javascript: URLs and custom element definitions of the recorded
  // page could only fail there (each failure a console error), so they are dropped before
  // playing. Iterative: real DOMs are deep.
  function cleanAttributes(attrs) {
    if (!attrs || typeof attrs !== "object") return;
    for (var k in attrs) {
      if (!Object.prototype.hasOwnProperty.call(attrs, k)) continue;
      var v = attrs[k];
      if (/^on/i.test(k)) delete attrs[k];
      else if (typeof v === "string" && /^\s*javascript:/i.test(v)) attrs[k] = "#";
    }
  }
  function cleanTree(root) {
    var stack = [root];
    while (stack.length) {
      var n = stack.pop();
      if (!n || typeof n !== "object") continue;
      cleanAttributes(n.attributes);
      // A custom element would be defined in the replay frame, and its constructor would
      // run there: blocked. Replayed as a plain element (its recorded children are kept).
      if (n.isCustom) delete n.isCustom;
      // A recorded iframe's document comes with the recording; its srcdoc would load over it.
      if (n.tagName === "iframe" && n.attributes) delete n.attributes.srcdoc;
      if (Array.isArray(n.childNodes)) for (var i = 0; i < n.childNodes.length; i++) stack.push(n.childNodes[i]);
    }
  }
  function clean(e) {
    if (!e || !e.data) return e;
    if (e.type === 2) cleanTree(e.data.node);
    else if (e.type === 3 && e.data.source === 0) {
      (e.data.adds || []).forEach(function (a) { cleanTree(a.node); });
      (e.data.attributes || []).forEach(function (a) { cleanAttributes(a.attributes); });
    }
    return e;
  }

  function playerClass() {
    var P = window.rrwebPlayer;
    return P && (P.Player || P.default || (typeof P === "function" ? P : null));
  }

  async function load() {
    var events = [], failed = [];
    for (var i = 0; i < segments.length; i++) {
      say("Loading segment " + (i + 1) + " of " + segments.length + "…");
      var url = base + "/v1/replay/" + encodeURIComponent(sid) + "/" + segments[i];
      var r = await fetch(url, { credentials: "same-origin" });
      if (!r.ok) { failed.push(segments[i]); continue; }
      var batch = await r.json();
      for (var j = 0; j < batch.length; j++) events.push(clean(batch[j]));
    }
    state.events = events.length;
    if (events.length < 2) {
      set("failed");
      say("Nothing to play: " + events.length + " recorded event(s)" +
        (failed.length ? "; segments " + failed.join(", ") + " could not be loaded" : "") + ".");
      return;
    }
    var P = playerClass();
    if (!P) {
      set("failed");
      say("rrweb-player did not load: check ConsoleBuilder::replay_player.");
      return;
    }
    var width = Math.max(320, Math.min(root.clientWidth || 960, 1280));
    var player = new P({
      target: root,
      props: { events: events, width: width, height: Math.round(width * 0.6),
        autoPlay: false, skipInactive: true, showController: true },
    });
    state.player = player;
    player.addEventListener("finish", function () { set("finished"); });
    // rrweb rewrites the replay frame's document (document.close/open/write) on every
    // rebuild after the first; Chromium reports such calls as "Blocked script execution …
    // sandboxed" (the frame runs no script, on purpose). Counted so that tests can tell
    // those reports from errors.
    try {
      var doc = player.getReplayer().iframe.contentDocument;
      ["open", "write", "close"].forEach(function (name) {
        var f = doc[name];
        doc[name] = function () { state.reopens++; return f.apply(doc, arguments); };
      });
    } catch (e) { /* a player without getReplayer(): nothing to count */ }
    say(segments.length + " segments, " + events.length + " events" +
      (failed.length ? "; segments " + failed.join(", ") + " could not be loaded" : "") +
      (start ? " · from " + fmt(start) : ""));
    set("ready");
    seek(start);
  }

  load().catch(function (e) {
    set("failed");
    say("The replay could not be loaded: " + e.message);
  });
})();
