/**
 * The error handler of the phone-number routes' encapsulation context: every
 * failure leaves as the contract's `{ error, details }` body. The host's own
 * error handler is untouched because this one is set on a child context.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { CODE_TITLES, ERROR_TITLES } from './errors.js'

// Matched by name rather than instanceof: a host may inject a Db from its own
// copy of the driver, whose classes are not ours.
const DATABASE_UNAVAILABLE = new Set([
  'MongoServerSelectionError',
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoTopologyClosedError',
  'MongoNotConnectedError',
  'MongoPoolClearedError',
  'MongoOperationTimeoutError'
])

export function isDatabaseUnavailable (error: Error): boolean {
  return DATABASE_UNAVAILABLE.has(error.name)
}

// After an early rejection (auth, content type, size) the body is still on its
// way. Node would read it to the end to keep the connection alive, however long
// it is. Instead read and discard a bounded amount, so the client sees its
// answer rather than a reset (a lingering close, as HTTP servers do), then close.
const LINGER_BYTES = 8 * 1024 * 1024
const LINGER_MS = 2000

function closeAfterLingering (request: IncomingMessage, response: ServerResponse): void {
  response.once('finish', () => {
    const socket = request.socket as IncomingMessage['socket'] | undefined
    // app.inject() requests have no real socket (and never complete): nothing to close.
    if (request.complete || typeof socket?.destroy !== 'function') return
    let discarded = 0
    // Counted on the socket: Node discards a dumped request's body in its parser, without 'data' events.
    const count = (chunk: Buffer): void => {
      discarded += chunk.length
      if (discarded > LINGER_BYTES) socket.destroy()
    }
    const timer = setTimeout(() => socket.destroy(), LINGER_MS)
    timer.unref()
    // The rest of the body arrived in time: the connection stays open for its next request.
    const stop = (): void => {
      clearTimeout(timer)
      socket.off('data', count)
    }
    socket.on('data', count)
    request.once('end', stop)
    socket.once('close', stop)
  })
}

/** An error as the contract answers it: the status and the `{ error, details }` body. */
export interface ContractError {
  status: number
  body: { error: string, details: string }
}

/**
 * The contract's answer to an error: the one mapping of the plugin, used by
 * its error handler and for each item of a bulk request. A 5xx is logged
 * (the logger carries the request id) and tells the client nothing internal.
 */
export function contractErrorOf (error: FastifyError | Error, request: FastifyRequest): ContractError {
  const failure = error as FastifyError
  if (failure.validation !== undefined) {
    // Fastify's message names the part and field, e.g.
    // `body/phoneNumber must match pattern "^\+[1-9]\d{1,14}$"`.
    return { status: 400, body: { error: ERROR_TITLES[400] ?? 'Validation error', details: error.message } }
  }

  const status = failure.statusCode ?? 500
  if (status >= 400 && status < 500) {
    const title = CODE_TITLES[failure.code] ?? ERROR_TITLES[status] ?? 'Request error'
    return { status, body: { error: title, details: error.message } }
  }

  const unavailable = isDatabaseUnavailable(error)
  request.log.error({ err: error }, 'org-phone-numbers request failed')
  return {
    status: unavailable ? 503 : 500,
    body: {
      error: (unavailable ? ERROR_TITLES[503] : ERROR_TITLES[500]) ?? 'Internal server error',
      details: unavailable
        ? `The database is unreachable; retry later (request id ${request.id})`
        : `The request could not be completed (request id ${request.id})`
    }
  }
}

export function replyWithContractError (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  if (!request.raw.complete) closeAfterLingering(request.raw, reply.raw)
  const { status, body } = contractErrorOf(error, request)
  reply.code(status).send(body)
}

/**
 * For Fastify's `frameworkErrors` server option. The router rejects some URLs
 * (a path parameter over `maxParamLength`, a broken percent-escape) before any
 * route or plugin runs, so no encapsulated error handler sees them; this
 * answers those in the contract's shape: 400 `{ error, details }`.
 */
export function replyToFrameworkError (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  if (error.code === 'FST_ERR_BAD_URL' || error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    reply.code(400).send({ error: ERROR_TITLES[400], details: error.message })
    return
  }
  replyWithContractError(error, request, reply)
}
