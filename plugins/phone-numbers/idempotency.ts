/**
 * The `Idempotency-Key` header of the plugin's POST and DELETE routes, as
 * two hooks, so the routes stay as they are:
 *
 * - `preHandler` (after auth and validation, so a malformed key has already
 *   answered 400 without any database work) claims the key: the first request
 *   runs; a repeat gets the kept answer, 422 with another body, or 409 while
 *   the first still runs.
 * - `onSend` keeps the answer of the request that ran: 2xx and 4xx are kept
 *   (as Stripe does), a 5xx is dropped so that a retry runs again.
 *
 * The key belongs to the caller (the token's `sub`), the organization, the
 * method and the route path.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { canonicalBodyHash, idempotencyRecordId, type IdempotencyRecords } from '../../src/domain/idempotency-records.js'
import { actorOf } from './auth.js'
import { IdempotencyKeyInUseError, IdempotencyKeyReusedError } from './errors.js'

export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key'
export const REPLAYED_HEADER = 'idempotent-replayed'

const KEYED_METHODS = new Set(['POST', 'DELETE'])
/** A running request usually ends within milliseconds; the lease (a dead process's key) is far longer. */
const IN_FLIGHT_RETRY_AFTER_SECONDS = 1

interface Attempt {
  id: string
  owner: string
  /** Set by `forgetIdempotentAnswer`: the answer is dropped like a 5xx. */
  forget: boolean
}

/** The requests of this process that hold a key, until their answer is sent. */
const attempts = new WeakMap<FastifyRequest, Attempt>()

/**
 * For an answer that must not be replayed although its status is below 500
 * (a bulk answer with items that failed on the server): a retry with the same
 * key runs again.
 */
export function forgetIdempotentAnswer (request: FastifyRequest): void {
  const attempt = attempts.get(request)
  if (attempt !== undefined) attempt.forget = true
}

function keyOf (request: FastifyRequest): string | undefined {
  const key = request.headers[IDEMPOTENCY_KEY_HEADER]
  return KEYED_METHODS.has(request.method) && typeof key === 'string' ? key : undefined
}

function scopeOf (request: FastifyRequest): Array<string | null> {
  const organizationId = (request.params as { organizationId?: unknown } | undefined)?.organizationId
  // ObjectId hex is case-insensitive: one organization is one scope however its id is spelled.
  return [actorOf(request).sub, typeof organizationId === 'string' ? organizationId.toLowerCase() : null, request.method, request.routeOptions.url ?? request.url]
}

export function useIdempotencyKeys (fastify: FastifyInstance, records: IdempotencyRecords): void {
  fastify.addHook('preHandler', async (request: FastifyRequest, reply: FastifyReply) => {
    const key = keyOf(request)
    if (key === undefined) return
    const id = idempotencyRecordId(scopeOf(request), key)
    const begun = await records.begin(id, canonicalBodyHash(request.body))
    switch (begun.status) {
      case 'started':
        attempts.set(request, { id, owner: begun.owner, forget: false })
        return
      case 'replay':
        // The kept text as it was sent: no second serialisation, no handler run.
        reply.code(begun.answer.status).header(REPLAYED_HEADER, 'true').type(begun.answer.contentType).send(begun.answer.body)
        return reply
      case 'in-flight':
        reply.header('retry-after', String(IN_FLIGHT_RETRY_AFTER_SECONDS))
        throw new IdempotencyKeyInUseError(IN_FLIGHT_RETRY_AFTER_SECONDS)
      case 'other-body':
        throw new IdempotencyKeyReusedError()
    }
  })

  fastify.addHook('onSend', async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const attempt = attempts.get(request)
    if (attempt === undefined) return payload
    attempts.delete(request)
    try {
      if (reply.statusCode >= 500 || attempt.forget || typeof payload !== 'string') {
        await records.abandon(attempt.id, attempt.owner)
      } else {
        const contentType = reply.getHeader('content-type')
        await records.complete(attempt.id, attempt.owner, {
          status: reply.statusCode,
          contentType: typeof contentType === 'string' ? contentType : 'application/json; charset=utf-8',
          body: payload
        })
      }
    } catch (error) {
      // The change is made and the caller still gets its answer; only a retry with this key
      // answers 409 until the in-flight lease ends, then runs again.
      request.log.error({ err: error }, 'org-phone-numbers: the answer for an Idempotency-Key could not be kept')
    }
    return payload
  })
}

/**
 * Deletes expired records every `intervalMs`, for backends without a TTL
 * index (and as a bound on the collection where the TTL monitor lags);
 * correctness never waits for it: `begin` takes an expired record for absent.
 * Returns the function that stops it.
 */
export function startIdempotencySweeps (records: IdempotencyRecords, intervalMs: number, log: FastifyInstance['log']): () => Promise<void> {
  let running: Promise<unknown> = Promise.resolve()
  const timer = setInterval(() => {
    running = records.sweepExpired().catch((error: unknown) => {
      log.error({ err: error }, 'org-phone-numbers: deleting expired Idempotency-Key records (retried at the next sweep)')
    })
  }, intervalMs)
  timer.unref()
  return async () => {
    clearInterval(timer)
    await running
  }
}
