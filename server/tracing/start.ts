/**
 * OpenTelemetry for the standalone server: a span per request from @fastify/otel (route
 * pattern in http.route, an incoming W3C traceparent continued), a child span per MongoDB
 * command from @opentelemetry/instrumentation-mongodb, exported in batches as OTLP/HTTP JSON.
 * Loaded by preload.ts only when the OTEL variables ask for it.
 */
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { registerInstrumentations } from '@opentelemetry/instrumentation'
import { MongoDBInstrumentation } from '@opentelemetry/instrumentation-mongodb'
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources'
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import type { TracingSettings } from './settings.js'

/** Starts tracing; returns the function that flushes the batched spans and stops it. */
export function startTracing (settings: TracingSettings): () => Promise<void> {
  const provider = new NodeTracerProvider({
    // OTEL_RESOURCE_ATTRIBUTES (and OTEL_SERVICE_NAME) win over our default name.
    resource: resourceFromAttributes({ 'service.name': settings.serviceName }).merge(detectResources({ detectors: [envDetector] })),
    // The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT and _HEADERS; the batch OTEL_BSP_*.
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())]
  })
  // The AsyncLocalStorage context manager and the W3C trace-context and baggage propagators.
  provider.register()
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new MongoDBInstrumentation(),
      new FastifyOtelInstrumentation({
        // Added to every Fastify instance as it is created: server.ts and app.ts stay unaware of tracing.
        registerOnInitialization: true,
        // "POST /api/organizations/:organizationId/phone-numbers" rather than "request".
        requestHook: (span, request) => {
          if (request.routeOptions.url !== undefined) span.updateName(`${request.method} ${request.routeOptions.url}`)
        }
      })
    ]
  })
  return async () => { await provider.shutdown() }
}
