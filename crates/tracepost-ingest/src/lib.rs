//! tracepost's browser capture. Placeholder until the ingest routes land: it holds the browser
//! script, `js/tp.js`, and the opt-in web-vitals script, `js/tp-vitals.js`.

/// The browser script served at `{prefix}/tp.js` (readable source, served as written).
pub const TP_JS: &str = include_str!("../js/tp.js");

/// The opt-in web-vitals script (LCP, INP, CLS, FCP, TTFB), loaded after `tp.js`.
pub const TP_VITALS_JS: &str = include_str!("../js/tp-vitals.js");
