/**
 * The one link between the server and its tracing: the preload registers how to flush the
 * spans, and the server's graceful shutdown calls it. Imports nothing of OpenTelemetry.
 */
let flush: (() => Promise<void>) | undefined

export function onTracingShutdown (shutdown: () => Promise<void>): void {
  flush = shutdown
}

/** Sends the spans still batched and stops the exporter; does nothing when tracing is off. */
export async function shutdownTracing (): Promise<void> {
  const pending = flush
  flush = undefined
  await pending?.()
}
