/** A tiny HTTP client for load: one keep-alive socket per worker, timings, and transport failures as codes. */
import http from 'node:http'

export interface Answer {
  status: number
  body: unknown
  ms: number
  headers: http.IncomingHttpHeaders
}

/** One request of a load script and how it ended. Times are performance.now() of the script, ms. */
export interface RequestRecord<Op extends string> {
  id: string
  op: Op
  /** Which server process it went to. */
  server: number
  start: number
  end: number
  status: number
  /** No HTTP answer (connection refused, reset, timeout): the transport error's code. */
  failure?: string
  /** The `error` title of an error answer. */
  error?: string
}

export class RequestFailure extends Error {
  constructor (readonly code: string, readonly ms: number, message: string) {
    super(message)
  }
}

export function newAgent (): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: 1 })
}

export async function call (
  base: string,
  method: string,
  path: string,
  options: { agent?: http.Agent | false, headers?: Record<string, string>, body?: unknown, timeoutMs?: number } = {}
): Promise<Answer> {
  const started = performance.now()
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body)
  return await new Promise<Answer>((resolve, reject) => {
    const request = http.request(`${base}${path}`, {
      method,
      agent: options.agent ?? false,
      headers: {
        ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
        ...options.headers
      },
      timeout: options.timeoutMs ?? 30_000
    }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.once('error', (error: NodeJS.ErrnoException) => reject(new RequestFailure(error.code ?? 'ERESPONSE', performance.now() - started, error.message)))
      response.once('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let body: unknown = text
        try { body = JSON.parse(text) } catch { /* not JSON: keep the text */ }
        resolve({ status: response.statusCode ?? 0, body, ms: performance.now() - started, headers: response.headers })
      })
    })
    request.once('timeout', () => request.destroy(Object.assign(new Error('client timeout'), { code: 'ETIMEDOUT_CLIENT' })))
    request.once('error', (error: NodeJS.ErrnoException) => reject(new RequestFailure(error.code ?? 'EREQUEST', performance.now() - started, error.message)))
    request.end(payload)
  })
}

export function isErrorBody (body: unknown): body is { error: string, details: string } {
  return typeof body === 'object' && body !== null &&
    typeof (body as Record<string, unknown>)['error'] === 'string' &&
    typeof (body as Record<string, unknown>)['details'] === 'string'
}
