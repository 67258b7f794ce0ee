/* tp.js: the browser script (owned by the tpjs helper; this placeholder is replaced). */
