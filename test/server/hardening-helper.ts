/**
 * Shared by the hardening-*.test.ts files (findings of the security review,
 * issue 14, against the real standalone server process): the secret, issuer
 * and audience, hand-signed tokens, stopping a server, and a raw-socket
 * exchange that keeps sending a body until the server closes.
 */
import { once } from 'node:events'
import { createHmac } from 'node:crypto'
import net from 'node:net'
import type { StandaloneServer } from './helper-server.js'

export const SECRET = 'hardening-secret-0123456789-abcdefghij-KLMNOP'
export const ISSUER = 'https://id.example'
export const AUDIENCE = 'phone-api'

/** An HS256 token with exactly these claims (the signer would add its own exp). */
export function hs256 (payload: Record<string, unknown>): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(payload)}`
  return `${unsigned}.${createHmac('sha256', SECRET).update(unsigned).digest('base64url')}`
}

export async function stop (server: StandaloneServer): Promise<void> {
  if (server.child.exitCode !== null) return
  const gone = once(server.child, 'close')
  server.child.kill('SIGTERM')
  await gone
}

export interface RawExchange {
  /** Everything the server sent. */
  received: string
  /** Milliseconds from the first byte sent until the server closed the socket (undefined: still open at the deadline). */
  closedAfterMs: number | undefined
  /** Body bytes the client managed to hand to the socket after the response began. */
  bytesAfterResponse: number
}

/**
 * Sends `head` over a raw socket, then (if `bodyChunk` is given) keeps writing
 * it until the server closes the socket, `maxBodyBytes` is reached, or
 * `deadlineMs` passes.
 */
export async function rawExchange (port: number, head: string, options: { bodyChunk?: Buffer, maxBodyBytes?: number, deadlineMs: number }): Promise<RawExchange> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  const started = performance.now()
  let received = ''
  const state: { closedAfterMs: number | undefined } = { closedAfterMs: undefined }
  let responseStarted = false
  let bytesAfterResponse = 0
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1')
    responseStarted = true
  })
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.once('close', () => {
    state.closedAfterMs = performance.now() - started
    resolve()
  }))
  // events.once() would reject on the EPIPE a closed socket raises; this only waits.
  const drained = (): Promise<void> => new Promise((resolve) => {
    socket.once('drain', resolve)
    socket.once('error', () => resolve())
  })
  socket.write(head)
  const deadline = started + options.deadlineMs
  let sent = 0
  while (options.bodyChunk !== undefined && state.closedAfterMs === undefined && !socket.destroyed && sent < (options.maxBodyBytes ?? Infinity) && performance.now() < deadline) {
    const flushed = socket.write(options.bodyChunk)
    sent += options.bodyChunk.length
    if (responseStarted) bytesAfterResponse += options.bodyChunk.length
    if (!flushed) await Promise.race([drained(), closed, new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - performance.now())))])
  }
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - performance.now())))])
  socket.destroy()
  return { received, closedAfterMs: state.closedAfterMs, bytesAfterResponse }
}
