// tracepost's browser script: see the book, "Capture browser errors and analytics".
// Every entry point is guarded: nothing here throws into the page.
(function (w, d) {
  var el = d.currentScript;
  if (!el || w.tracepost || !w.fetch) return;
  var attr = function (n) { return el.getAttribute('data-' + n); };
  var loc = w.location, nav = navigator, F = w.fetch.bind(w), queue = [], mem = {};
  var endpoint = attr('endpoint') || new URL('v1/events', el.src).href;
  var cookieless = attr('cookieless') != null;
  var origins = (attr('propagate') || '').split(',').map(function (o) {
    try { return new URL(o.trim()).origin; } catch (e) {}
  });
  var timer, userId;

  var hex = function (n) {
    var a = crypto.getRandomValues(new Uint8Array(n)), s = '';
    for (var i = 0; i < n; i++) s += (a[i] + 256).toString(16).slice(1);
    return s;
  };
  var guard = function (f) {
    return function () { try { return f.apply(this, arguments); } catch (e) {} };
  };
  // A JSON-safe copy: a cycle must not break the batch later.
  var plain = function (v) {
    try { return v == null ? v : JSON.parse(JSON.stringify(v)); } catch (e) { return {}; }
  };
  var cut = function (s, n) { return s == null ? s : String(s).slice(0, n || 256); };

  // Memory only in cookieless mode or when storage is refused.
  var store = function (kind, k, v) {
    try {
      if (cookieless) throw 0;
      return v ? w[kind].setItem(k, v) : w[kind].getItem(k);
    } catch (e) {
      return v ? (mem[k] = v) : mem[k];
    }
  };
  var visitor = cookieless ? void 0 : store('localStorage', 'tp_vid') || hex(16);
  if (visitor) store('localStorage', 'tp_vid', visitor);
  // "id.lastActivityMs": a new id after 30 min idle.
  var session = function () {
    var s = (store('sessionStorage', 'tp_sid') || '').split('.'), now = Date.now();
    if (!s[1] || now - s[1] > 18e5) s[0] = hex(16);
    store('sessionStorage', 'tp_sid', s[0] + '.' + now);
    return s[0];
  };
  var utm = {};
  new URLSearchParams(loc.search).forEach(function (v, k) {
    if (/^utm_(source|medium|campaign|term|content)$/.test(k)) utm[k.slice(4)] = cut(v);
  });

  var push = function (e) {
    e.ts = Date.now();
    e.url = loc.href;
    session();
    if (queue.length < 500) queue.push(e);
    if (queue.length >= 50) flush();
    else timer = timer || setTimeout(flush, 2e3);
  };

  var target = function () {
    var t = attr('token'); // read at each send: an SPA may refresh it
    return endpoint + '?key=' + encodeURIComponent(attr('key') || '') +
      (t ? '&token=' + encodeURIComponent(t) : '');
  };
  var batch = function (events) {
    return JSON.stringify({
      batch_id: hex(16), sent_at: Date.now(), session_id: session(), visitor_id: visitor,
      user_id: userId, page: { url: loc.href, referrer: d.referrer, title: d.title },
      screen: screen.width + 'x' + screen.height, language: nav.language,
      utm: utm.source || utm.medium || utm.campaign ? utm : void 0, events: events
    });
  };
  // A string body is text/plain: no CORS preflight. 3 tries, after Retry-After when given.
  var post = guard(function (body, tries) {
    var retry = function (after) {
      if (++tries > 2) return;
      var ms = isNaN(after) ? Date.parse(after) - Date.now() : after * 1e3;
      setTimeout(post, Math.min(Math.max(ms || 0, 1e3 * tries), 6e4), body, tries);
    };
    F(target(), { method: 'POST', body: body, credentials: 'omit' })
      .then(guard(function (r) {
        if (r.status == 429 || r.status > 499) retry(r.headers.get('retry-after'));
      }), retry);
  });
  // Beacons share a 64 KiB quota: split big batches; fetch what a beacon can't take.
  var beacon = function (events) {
    var body = batch(events), half = events.length >> 1, big = new Blob([body]).size > 6e4;
    if (big && half) {
      beacon(events.slice(0, half));
      beacon(events.slice(half));
    } else if (big || !nav.sendBeacon(target(), body)) post(body, 0);
  };
  var flush = guard(function (hiding) {
    clearTimeout(timer);
    timer = 0;
    while (queue.length) {
      var events = queue.splice(0, 50);
      hiding ? beacon(events) : post(batch(events), 0);
    }
  });

  var error = function (x, mechanism, extra, ev) {
    var isErr = x && typeof x == 'object' && 'message' in x;
    ev = ev || {};
    var text = typeof x == 'object' ? JSON.stringify(plain(x)) : String(x);
    push({
      type: 'error', name: cut(isErr && x.name || 'Error'),
      message: cut(isErr ? x.message : ev.message || text, 2e3),
      stack: cut(isErr ? x.stack : void 0, 16e3),
      handled: mechanism == 'captureException', mechanism: mechanism,
      source: ev.filename || void 0, line: ev.lineno || void 0, col: ev.colno || void 0,
      extra: plain(extra)
    });
  };
  w.addEventListener('error', guard(function (e) {
    if (e.message || e.error) error(e.error, 'onerror', void 0, e);
  }));
  w.addEventListener('unhandledrejection', guard(function (e) {
    error(e.reason, 'unhandledrejection');
  }));

  // Page views, SPA navigations included.
  var last = loc.href;
  var pageview = guard(function (how, referrer) {
    if (how == 'load' || loc.href != last) {
      push({ type: 'pageview', referrer: referrer || void 0, title: d.title, nav: how });
    }
    last = loc.href;
  });
  ['push', 'replace'].forEach(function (how) {
    var orig = history[how + 'State'];
    history[how + 'State'] = function () {
      var r = orig.apply(this, arguments);
      pageview(how, last);
      return r;
    };
  });
  w.addEventListener('popstate', function () { pageview('pop', last); });

  // Headers for requests to the page's origin and data-propagate's.
  var headers = function (u, set) {
    var o = new URL(u, loc.href).origin;
    if (o == loc.origin || origins.indexOf(o) >= 0) {
      set('traceparent', '00-' + hex(16) + '-' + hex(8) + '-01');
      set('x-tracepost-session', session());
      return 1;
    }
  };
  w.fetch = function (input, init) {
    try {
      var req = input instanceof Request;
      var h = new Headers(init && init.headers || (req ? input.headers : void 0));
      if (headers(req ? input.url : String(input), function (k, v) { h.has(k) || h.set(k, v); })) {
        init = Object.assign({}, init, { headers: h });
      }
    } catch (e) {}
    return F(input, init);
  };
  var X = XMLHttpRequest.prototype, open = X.open, send = X.send;
  X.open = function (m, u) {
    this._tpUrl = u;
    return open.apply(this, arguments);
  };
  X.send = function () {
    try { headers(this._tpUrl, this.setRequestHeader.bind(this)); } catch (e) {}
    return send.apply(this, arguments);
  };

  // Run before the last flush (tp-vitals.js adds its final values).
  var onhide = [];
  var hide = guard(function () {
    onhide.splice(0).forEach(function (f) { guard(f)(); });
    flush(1);
  });
  w.addEventListener('pagehide', hide);
  d.addEventListener('visibilitychange', function () {
    if (d.visibilityState == 'hidden') hide();
  });

  w.tracepost = {
    captureException: guard(function (err, ctx) { error(err, 'captureException', ctx); }),
    track: guard(function (name, props) {
      push({ type: 'track', name: cut(name), props: plain(props) });
    }),
    identify: guard(function (id, traits) {
      push({ type: 'identify', user_id: userId = cut(id), traits: plain(traits) });
    }),
    flush: function () { flush(); },
    _push: guard(push), _onhide: onhide, _s: function () { return [session(), visitor, userId] }
  };
  pageview('load', d.referrer);
})(window, document);
