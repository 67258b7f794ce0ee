"""Send Python logs to tracepost with the OpenTelemetry SDK (pip install opentelemetry-sdk
opentelemetry-exporter-otlp-proto-http). Also run by crates/tracepost-ingest/tests/otel.rs
(TP_URL, TP_KEY): it logs inside a span and prints the span's trace id.

The same without code: OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=https://tracepost.example/tracepost/v1/logs
OTEL_EXPORTER_OTLP_LOGS_HEADERS=x-tracepost-key=tpk_... with opentelemetry-instrument.
"""
import logging, os

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

url, key = os.environ["TP_URL"], os.environ["TP_KEY"]
resource = Resource.create({"service.name": "otel-python", "deployment.environment.name": "test"})
trace.set_tracer_provider(TracerProvider(resource=resource))
provider = LoggerProvider(resource=resource)
provider.add_log_record_processor(BatchLogRecordProcessor(
    OTLPLogExporter(endpoint=f"{url}/v1/logs", headers={"x-tracepost-key": key})))
logging.getLogger().addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
logging.getLogger().setLevel(logging.INFO)
log = logging.getLogger("shop.checkout")

with trace.get_tracer("shop").start_as_current_span("checkout") as span:
    log.warning("payment retried", extra={"order.id": 7, "password": "hunter2-planted"})
    log.error("payment failed", extra={"order.id": 7})
    print("TRACE_ID", format(span.get_span_context().trace_id, "032x"))
provider.shutdown()
