/**
 * The OTLP/HTTP receiver of the `ours-tracing` scenario: a node:http server on 127.0.0.1 that
 * answers every POST /v1/traces with 200 and discards the body, counting only the requests and
 * bytes, so the cost measured is the server's tracing and export, not a collector's.
 */
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface OtlpSinkCounts {
  exportRequests: number
  bytes: number
  /** Requests that were not POST /v1/traces. */
  rejected: number
}

export interface OtlpSink {
  /** For OTEL_EXPORTER_OTLP_ENDPOINT (the exporter adds /v1/traces). */
  endpoint: string
  counts: () => OtlpSinkCounts
  close: () => Promise<void>
}

export async function startOtlpSink (): Promise<OtlpSink> {
  const counts: OtlpSinkCounts = { exportRequests: 0, bytes: 0, rejected: 0 }
  const server = createServer((request, response) => {
    request.on('data', (chunk: Buffer) => { counts.bytes += chunk.length })
    request.on('end', () => {
      if (request.method !== 'POST' || request.url !== '/v1/traces') {
        counts.rejected++
        response.writeHead(404).end()
        return
      }
      counts.exportRequests++
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counts: () => ({ ...counts }),
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
