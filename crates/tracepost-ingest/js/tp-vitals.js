// tracepost's opt-in web vitals (LCP, INP, CLS, FCP, TTFB), sent as "vital" events with tp.js's
// batches when the page is first hidden. Load it after tp.js:
//   <script src="/tracepost/tp-vitals.js" defer></script>
// Thresholds for the rating are web.dev's ("good" up to the first, "poor" above the second).
(function (w) {
  var vitals = {};
  var rate = function (name, value, good, poor) {
    vitals[name] = {
      type: 'vital', name: name, value: value,
      rating: value <= good ? 'good' : value <= poor ? 'needs-improvement' : 'poor'
    };
  };
  var observe = function (type, f, opts) {
    try {
      new PerformanceObserver(function (list) {
        try { list.getEntries().forEach(f); } catch (e) {}
      }).observe(Object.assign({ type: type, buffered: true }, opts));
    } catch (e) {} // an entry type this browser lacks
  };
  var start = function () {
    var tp = w.tracepost;
    if (!tp || !tp._onhide || tp._vitals) return;
    tp._vitals = 1;
    observe('navigation', function (e) { rate('TTFB', e.responseStart, 800, 1800); });
    observe('paint', function (e) {
      if (e.name == 'first-contentful-paint') rate('FCP', e.startTime, 1800, 3000);
    });
    observe('largest-contentful-paint', function (e) { rate('LCP', e.startTime, 2500, 4000); });
    // CLS: the largest session window of unexpected shifts (gaps under 1 s, at most 5 s long).
    var cls = 0, windowValue = 0, windowStart = 0, previous = 0;
    observe('layout-shift', function (e) {
      if (e.hadRecentInput) return;
      if (windowValue && e.startTime - previous < 1000 && e.startTime - windowStart < 5000) {
        windowValue += e.value;
      } else {
        windowValue = e.value;
        windowStart = e.startTime;
      }
      previous = e.startTime;
      if (windowValue > cls) rate('CLS', cls = windowValue, 0.1, 0.25);
    });
    // INP: the slowest interaction; web.dev's 98th percentile equals it below 50 interactions.
    var inp = 0;
    observe('event', function (e) {
      if (e.interactionId && e.duration > inp) rate('INP', inp = e.duration, 200, 500);
    }, { durationThreshold: 40 });
    tp._onhide.push(function () {
      for (var name in vitals) tp._push(vitals[name]);
    });
  };
  // Both scripts are deferred: tp.js has run by DOMContentLoaded whichever tag comes first.
  w.tracepost ? start() : w.addEventListener('DOMContentLoaded', start);
})(window);
