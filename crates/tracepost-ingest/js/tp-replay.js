// tracepost session replay: see the book, "Record and watch sessions". Load it after tp.js:
//   <script src="/tracepost/tp-replay.js" data-rrweb-src="/js/rrweb.min.js" defer></script>
// It records with rrweb's `record` (window.rrweb, window.rrwebRecord, or data-rrweb-src) and
// uploads gzipped segments to {prefix}/v1/replay. Every entry point is guarded: nothing here
// throws into the page.
(function (w, d) {
  var el = d.currentScript, tp = w.tracepost;
  if (!el || !tp || !tp._s || tp.replay) return;
  var attr = function (n) { return el.getAttribute('data-' + n); };
  var guard = function (f) {
    return function () { try { return f.apply(this, arguments); } catch (e) {} };
  };
  // tp.js's script tag: the key, token and endpoint default to its own.
  var main = d.querySelector('script[src*="tp.js"]') || el;
  var conf = function (n) { return attr(n) || main.getAttribute('data-' + n); };
  var endpoint = attr('endpoint') || new URL('v1/replay', el.src).href;

  var FLUSH_MS = 5e3, MAX_CHARS = 1e6, CHECKOUT_MS = 3e5, IDLE_MS = 3e5, MAX_MS = 36e5,
    BUFFER_MS = 6e4, KEEPALIVE_MAX = 6e4, MAX_QUEUE = 10;
  var mode = attr('mode') == 'errors' ? 'buffer' : 'session';
  var sample = parseFloat(attr('sample'));
  if (isNaN(sample)) sample = 1;

  // Per-session state in sessionStorage (in memory only when tp.js is cookieless), so a new
  // page of the same session continues the numbering: {sid, start, next segment, failed,
  // in flight, recorded ms, sampled}.
  var cookieless = main.getAttribute('data-cookieless') != null;
  var load = function (sid) {
    var s;
    try { s = cookieless ? 0 : JSON.parse(sessionStorage.getItem('tp_replay')); } catch (e) {}
    if (!s || s.sid != sid) s = { sid: sid, start: Date.now(), seq: 0, failed: 0, fly: 0, ms: 0 };
    return s;
  };
  var save = function () {
    try { cookieless || sessionStorage.setItem('tp_replay', JSON.stringify(st)); } catch (e) {}
  };
  var ctx = function () { return tp._s(); };
  var st = load(ctx()[0]);
  // Segments in flight when the last page went away never got an answer: count them missing.
  st.failed += st.fly;
  st.fly = 0;
  save();

  var buf = [], chars = 0, prev = [], stopRec, timer, state = 'stopped', errors = 0,
    last = Date.now(), began = 0, queue = [], sending = 0, forced, rrweb;

  var recorder = function () {
    return (w.rrweb && w.rrweb.record) || w.rrwebRecord || (rrweb && rrweb.record);
  };

  var url = function (seg) {
    var c = ctx(), t = conf('token'), q = {
      key: conf('key') || '', session: seg.sid, segment: seg.seq, session_start: seg.start,
      sent_at: Date.now(), missing: st.failed, errors: seg.errors, visitor: c[1], user: c[2]
    }, s = [];
    if (t) q.token = t;
    for (var k in q) if (q[k] != null) s.push(k + '=' + encodeURIComponent(q[k]));
    return endpoint + '?' + s.join('&');
  };

  var gzip = function (text) {
    if (!w.CompressionStream) return Promise.resolve(text);
    return new Response(new Blob([text]).stream().pipeThrough(new CompressionStream('gzip')))
      .arrayBuffer().catch(function () { return text; });
  };

  // One segment at a time, in order; 3 tries on 408/409/425/429/5xx or a network error,
  // after Retry-After when given. A segment that can't be sent is counted as missing.
  var pump = guard(function () {
    if (sending || !queue.length) return;
    sending = 1;
    var seg = queue[0], tries = 0;
    var done = function (ok) {
      queue.shift();
      st.fly--;
      if (!ok) st.failed++;
      save();
      sending = 0;
      pump();
    };
    var attempt = function () {
      gzip(seg.body).then(function (body) {
        return fetch(url(seg), { method: 'POST', body: body, credentials: 'omit' });
      }).then(function (r) {
        if (r.ok) return done(1);
        var s = r.status;
        if ((s == 408 || s == 409 || s == 425 || s == 429 || s > 499) && ++tries < 3) {
          var after = parseFloat(r.headers.get('retry-after'));
          return setTimeout(attempt, Math.min((after || tries) * 1e3, 3e4));
        }
        done(0);
      }).catch(function () {
        ++tries < 3 ? setTimeout(attempt, tries * 1e3) : done(0);
      });
    };
    attempt();
  });

  // Cuts the buffer into a segment. `hiding`: the page is going away, so send it now with
  // keepalive (plain JSON, if small enough) instead of queueing.
  var flush = guard(function (hiding) {
    clearTimeout(timer);
    timer = 0;
    if (!buf.length || mode == 'buffer') return;
    var seg = { sid: st.sid, start: st.start, seq: st.seq++, errors: errors,
      body: '[' + buf.join(',') + ']' };
    buf = [];
    chars = 0;
    errors = 0;
    if (hiding && seg.body.length <= KEEPALIVE_MAX) {
      save();
      fetch(url(seg), {
        method: 'POST', body: seg.body, keepalive: true, credentials: 'omit'
      }).catch(function () {});
      return;
    }
    if (queue.length >= MAX_QUEUE) {
      // Offline for long: drop the oldest waiting segment rather than grow without end.
      queue.splice(sending, 1);
      st.fly--;
      st.failed++;
    }
    queue.push(seg);
    st.fly++;
    save();
    pump();
  });

  var ACTIVE = { 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 12: 1 };
  var emit = guard(function (e, checkout) {
    var now = Date.now();
    if (e.type == 3 && ACTIVE[e.data.source]) last = now;
    if (checkout && mode == 'buffer') {
      // Error-only mode: keep the events since the checkout before the last one (30-60 s).
      prev = buf;
      buf = [];
      chars = 0;
    } else if (checkout && buf.length) {
      flush();
    }
    var s = JSON.stringify(e);
    buf.push(s);
    chars += s.length;
    if (mode == 'buffer') return;
    if (chars >= MAX_CHARS) flush();
    else timer = timer || setTimeout(flush, FLUSH_MS);
  });

  var record = function () {
    var rec = recorder();
    if (!rec) return 0;
    var mask = attr('mask-text') != null;
    stopRec = rec({
      emit: emit,
      checkoutEveryNms: mode == 'buffer' ? BUFFER_MS / 2 : CHECKOUT_MS,
      // Privacy defaults (as Sentry and PostHog ship them): every input masked, passwords
      // always, .tp-mask text masked, .tp-block elements blocked, file inputs ignored,
      // canvas, fonts and images not recorded.
      maskAllInputs: true,
      maskInputOptions: { password: true },
      maskTextClass: 'tp-mask',
      // Text typed into rich-text editors (contenteditable) is masked like inputs.
      maskTextSelector: mask ? '*' : '[contenteditable]',
      blockClass: 'tp-block',
      blockSelector: 'input[type=file]',
      ignoreClass: 'tp-ignore',
      recordCanvas: false,
      collectFonts: false,
      inlineImages: false,
      slimDOMOptions: 'all',
      sampling: { mousemove: 50, scroll: 150 }
    });
    began = Date.now();
    last = began;
    return 1;
  };

  var halt = function () {
    if (stopRec) try { stopRec(); } catch (e) {}
    stopRec = 0;
    if (began) st.ms += Date.now() - began;
    began = 0;
  };

  // Starts recording in the current session (a new session id, after tp.js's 30 min idle,
  // starts a new recording), sampled unless started by `start()`.
  var begin = function () {
    var sid = ctx()[0];
    if (sid != st.sid) {
      st = load(sid);
      save();
    }
    if (stopRec || st.done) return;
    if (!forced) {
      if (st.sampled == null) {
        st.sampled = Math.random() < sample ? 1 : 0;
        save();
      }
      if (!st.sampled) return;
    }
    if (record()) state = mode == 'buffer' ? 'buffering' : 'recording';
  };
  var wake = guard(function () {
    if (state == 'paused') begin();
  });
  ['mousemove', 'mousedown', 'keydown', 'scroll', 'touchstart'].forEach(function (t) {
    d.addEventListener(t, wake, { capture: true, passive: true });
  });

  // Every 5 s: pause after 5 min without input, stop after 60 min of recording.
  setInterval(guard(function () {
    if (!stopRec) return;
    var now = Date.now();
    if (st.ms + now - began > MAX_MS) {
      api.stop();
      st.done = 1;
      save();
    } else if (now - last > IDLE_MS) {
      halt();
      flush();
      state = 'paused';
    }
  }), FLUSH_MS);

  // Errors: counted for the index, and in error-only mode they start the upload.
  var onError = guard(function () {
    errors++;
    if (mode == 'buffer' && stopRec) {
      mode = 'session';
      state = 'recording';
      buf = prev.concat(buf);
      prev = [];
      chars = buf.join('').length;
      flush();
      // Record on with the usual 5 min checkouts.
      halt();
      record();
    }
  });
  w.addEventListener('error', onError);
  w.addEventListener('unhandledrejection', onError);
  var capture = tp.captureException;
  tp.captureException = function () {
    onError();
    return capture.apply(this, arguments);
  };

  // Before tp.js's last flush: the last segment by keepalive (tp.js runs its hide callbacks
  // once, so register again for the next time the page is hidden).
  var hide = function () {
    flush(1);
    tp._onhide.push(hide);
  };
  tp._onhide.push(hide);

  var loadRrweb = function (then) {
    var src = attr('rrweb-src');
    if (recorder() || !src) return then();
    var s = d.createElement('script');
    s.src = src;
    s.onload = s.onerror = guard(then);
    d.head.appendChild(s);
  };

  var api = {
    // Starts recording now (no sampling): `{mode: 'errors'}` buffers the last 60 s and
    // uploads once an error happens.
    start: guard(function (opts, auto) {
      if (stopRec) return;
      forced = !auto;
      if (opts && opts.mode) mode = opts.mode == 'errors' ? 'buffer' : 'session';
      loadRrweb(guard(begin));
    }),
    // Stops recording and sends what is buffered.
    stop: guard(function () {
      halt();
      flush();
      state = 'stopped';
    }),
    flush: guard(function () { flush(); }),
    state: function () { return state; },
    // Segments not delivered so far in this session.
    missing: function () { return st.failed; }
  };
  tp.replay = api;

  // Sampled per session: the decision is kept for the session's other pages.
  if (attr('manual') == null) api.start(0, 1);
})(window, document);
