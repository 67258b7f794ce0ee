// Send Node logs to tracepost with the OpenTelemetry JS SDK (npm install @opentelemetry/api
// @opentelemetry/api-logs @opentelemetry/sdk-logs @opentelemetry/exporter-logs-otlp-http
// @opentelemetry/resources @opentelemetry/sdk-trace-base). Also run by
// examples/quickstart/tests/otel_node.rs (TP_URL, TP_KEY): it logs inside a span and prints
// the span's trace id.
//
// The OTLP/HTTP exporter sends JSON to {url}/v1/logs; the same without code:
// OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=https://tracepost.example/tracepost/v1/logs
// OTEL_EXPORTER_OTLP_LOGS_HEADERS=x-tracepost-key=tpk_...
"use strict";
const { context, trace } = require("@opentelemetry/api");
const { SeverityNumber } = require("@opentelemetry/api-logs");
const { OTLPLogExporter } = require("@opentelemetry/exporter-logs-otlp-http");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { BatchLogRecordProcessor, LoggerProvider } = require("@opentelemetry/sdk-logs");
const { BasicTracerProvider } = require("@opentelemetry/sdk-trace-base");

const url = process.env.TP_URL, key = process.env.TP_KEY;
const resource = resourceFromAttributes({ "service.name": "otel-node", "deployment.environment.name": "test" });
const exporter = new OTLPLogExporter({ url: `${url}/v1/logs`, headers: { "x-tracepost-key": key } });
const logs = new LoggerProvider({ resource, processors: [new BatchLogRecordProcessor({ exporter })] });
const log = logs.getLogger("shop.checkout");
const tracer = new BasicTracerProvider({ resource }).getTracer("shop");

(async () => {
  const span = tracer.startSpan("checkout");
  const ctx = trace.setSpan(context.active(), span);
  log.emit({ severityNumber: SeverityNumber.WARN, severityText: "WARN", body: "payment retried",
    attributes: { "order.id": 7, password: "hunter2-planted" }, context: ctx });
  log.emit({ severityNumber: SeverityNumber.ERROR, severityText: "ERROR", body: "payment failed",
    attributes: { "order.id": 7 }, context: ctx });
  span.end();
  console.log("TRACE_ID", span.spanContext().traceId);
  await logs.shutdown();
})();
