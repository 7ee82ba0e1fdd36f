/**
 * The webhook receiver of scripts/reliability/events.ts: a node:http server on
 * 127.0.0.1 that records every request (its event id, whether its signature
 * is valid, when) and answers 200. It checks signatures itself, not with the
 * plugin's code; stop() refuses connections until start() listens again on
 * the same port.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import { freePort } from '../../dev-database/index.js'

export interface Receipt { eventId: string, valid: boolean, at: number, bodyIdMatches: boolean }

/** The receiver's own check (independent of plugins/phone-numbers/webhook.ts): HMAC over the raw bytes, timing-safe, fresh. */
function signatureValid (secret: string, timestamp: string | undefined, signature: string | undefined, raw: Buffer): boolean {
  if (timestamp === undefined || signature === undefined || !/^\d{1,12}$/.test(timestamp)) return false
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(raw).digest('hex')}`)
  const given = Buffer.from(signature)
  return given.length === expected.length && timingSafeEqual(given, expected)
}

function header (request: http.IncomingMessage, name: string): string | undefined {
  const value = request.headers[name]
  return typeof value === 'string' ? value : undefined
}

function bodyIdOf (raw: Buffer): unknown {
  try {
    return (JSON.parse(raw.toString('utf8')) as { id?: unknown }).id
  } catch {
    return undefined
  }
}

export interface Receiver { port: number, receipts: Receipt[], start: () => Promise<void>, stop: () => Promise<void> }

/** A receiver on a free port of 127.0.0.1, checking signatures made with `secret`; not listening until start(). */
export async function createReceiver (secret: string): Promise<Receiver> {
  const port = await freePort()
  const receipts: Receipt[] = []
  let server: http.Server | undefined
  const handle = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.once('end', () => {
      const raw = Buffer.concat(chunks)
      const eventId = header(request, 'x-event-id') ?? '(none)'
      // Logged before answering: a receipt whose answer is lost (close, kill) is still a receipt.
      receipts.push({ eventId, valid: signatureValid(secret, header(request, 'x-timestamp'), header(request, 'x-signature'), raw), at: performance.now(), bodyIdMatches: bodyIdOf(raw) === eventId })
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok')
    })
  }
  return {
    port,
    receipts,
    start: async () => {
      server = http.createServer(handle)
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject)
        server!.listen(port, '127.0.0.1', () => resolve())
      })
    },
    // Refuses new connections and drops the open ones (the servers' keep-alive sockets) at once.
    stop: async () => {
      const closing = server
      if (closing === undefined) return
      server = undefined
      const closed = new Promise<void>((resolve) => closing.close(() => resolve()))
      closing.closeAllConnections()
      await closed
    }
  }
}
