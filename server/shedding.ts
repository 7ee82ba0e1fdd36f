/**
 * Load shedding, rate limits and CORS for the standalone server (the plugin
 * leaves all three to its host). Registered before any route, so its hooks
 * run ahead of the phone-number plugin's token check.
 */
import cors from '@fastify/cors'
import jwt from '@fastify/jwt'
import rateLimit from '@fastify/rate-limit'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { ServerConfig } from './config.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** @fastify/under-pressure: this route's own answer while the server is under pressure. */
    pressureHandler?: (request: FastifyRequest, reply: FastifyReply, type: string, value: number | undefined) => void
    /** Not counted by the rate limiter (health probes). */
    skipRateLimit?: boolean
  }
}

/** The token checks of the phone-number plugin, to tell a verified subject from a claimed one. */
export interface TokenCheck {
  secret: string
  issuer?: string | undefined
  audience?: string | undefined
}

export interface RateLimit {
  max: number
  windowMs: number
  token: TokenCheck
}

export interface SheddingOptions {
  /** Shed while the mean event-loop delay exceeds this (ms); 0: off. */
  maxEventLoopDelayMs: number
  /** Shed while the event-loop utilization of the last sample exceeds this (0–1); 0: off. */
  maxEventLoopUtilization: number
  /** Shed while the V8 heap in use exceeds this (bytes); 0: off. */
  maxHeapUsedBytes: number
  /** Retry-After of a 503 (seconds). */
  retryAfterSeconds: number
  /** Requests per window and bucket; undefined: no rate limit. */
  rateLimit: RateLimit | undefined
  /** Exact origins allowed by CORS; empty: no CORS headers. */
  corsOrigins: string[]
}

export function sheddingOptions (config: ServerConfig, jwtSecret: string): SheddingOptions {
  return {
    maxEventLoopDelayMs: config.maxEventLoopDelayMs,
    maxEventLoopUtilization: config.maxEventLoopUtilization,
    maxHeapUsedBytes: config.maxHeapUsedMb * 1024 * 1024,
    retryAfterSeconds: config.retryAfterSeconds,
    rateLimit: config.rateLimitMax === undefined
      ? undefined
      : { max: config.rateLimitMax, windowMs: config.rateLimitWindowMs, token: { secret: jwtSecret, issuer: config.jwtIssuer, audience: config.jwtAudience } },
    corsOrigins: config.corsOrigins
  }
}

/** /health's route config: it answers under pressure (503, status 'unavailable') and is never rate limited. */
export const HEALTH_ROUTE_CONFIG = {
  pressureHandler: (): void => {},
  skipRateLimit: true
}

const retryAfterOf = new WeakMap<FastifyInstance, number>()

/** True (and 503 with Retry-After set on the reply) while the server sheds load. */
export function markUnderPressure (fastify: FastifyInstance, reply: FastifyReply): boolean {
  const retryAfter = retryAfterOf.get(fastify)
  // Not registered on this instance: nothing to shed.
  if (retryAfter === undefined || !fastify.isUnderPressure()) return false
  reply.code(503).header('retry-after', String(retryAfter))
  return true
}

const PRESSURE_CAUSES: Record<string, string> = {
  eventLoopDelay: 'event-loop delay',
  eventLoopUtilization: 'event-loop utilization',
  heapUsedBytes: 'heap in use'
}

async function registerUnderPressure (fastify: FastifyInstance, options: SheddingOptions): Promise<void> {
  retryAfterOf.set(fastify, options.retryAfterSeconds)
  await fastify.register(underPressure, {
    maxEventLoopDelay: options.maxEventLoopDelayMs,
    maxEventLoopUtilization: options.maxEventLoopUtilization,
    // Per sample, not since start: a long idle past must not hide a saturated present.
    eventLoopUtilizationMode: 'interval',
    maxHeapUsedBytes: options.maxHeapUsedBytes,
    retryAfter: options.retryAfterSeconds,
    pressureHandler: (_request, reply, type) => {
      reply.code(503).header('retry-after', String(options.retryAfterSeconds)).send({
        error: 'Service unavailable',
        details: `The server is overloaded (${PRESSURE_CAUSES[type] ?? type} above its limit); retry in ${options.retryAfterSeconds} s`
      })
    }
  })
}

function tooManyRequests (reply: FastifyReply, limit: RateLimit, retryAfterSeconds: number): FastifyReply {
  const seconds = Math.max(1, retryAfterSeconds)
  return reply.code(429).header('retry-after', String(seconds)).send({
    error: 'Too many requests',
    details: `More than ${limit.max} requests in ${limit.windowMs / 1000} s; retry in ${seconds} s`
  })
}

/** Whose token a request carries, verified as the phone-number plugin does (signature, exp, iss, aud); undefined: none or invalid. */
async function subjectVerifier (fastify: FastifyInstance, token: TokenCheck): Promise<(request: FastifyRequest) => string | undefined> {
  let verify: ((token: string) => unknown) | undefined
  // In a context of its own, so no decorator of this second verifier reaches the app.
  await fastify.register(async (child) => {
    await child.register(jwt, {
      secret: token.secret,
      verify: {
        algorithms: ['HS256'],
        requiredClaims: ['exp', ...(token.issuer === undefined ? [] : ['iss']), ...(token.audience === undefined ? [] : ['aud'])],
        ...(token.issuer === undefined ? {} : { allowedIss: token.issuer }),
        ...(token.audience === undefined ? {} : { allowedAud: token.audience }),
        cache: true
      }
    })
    const api = child.jwt
    verify = (value) => api.verify(value)
  })
  return (request) => {
    const match = BEARER.exec(request.headers.authorization ?? '')
    if (match === null || verify === undefined) return undefined
    try {
      const sub = (verify(match[1]!) as { sub?: unknown }).sub
      return typeof sub === 'string' ? sub : undefined
    } catch {
      return undefined
    }
  }
}

const BEARER = /^Bearer\s+(\S+)$/i

/**
 * One fixed-window bucket per verified token subject, else per client
 * address. The limiter runs before the plugin's own token check, so it
 * verifies the token itself: keyed by an unverified `sub`, a caller could
 * escape the address limit (a fresh `sub` each time) or spend someone
 * else's bucket. Invalid and missing tokens count against the address.
 */
async function registerRateLimit (fastify: FastifyInstance, limit: RateLimit): Promise<void> {
  const subjectOf = await subjectVerifier(fastify, limit.token)
  await fastify.register(rateLimit, { global: false })
  const subjects = new WeakMap<FastifyRequest, string>()
  const byAddress = fastify.createRateLimit({ max: limit.max, timeWindow: limit.windowMs })
  const bySubject = fastify.createRateLimit({ max: limit.max, timeWindow: limit.windowMs, keyGenerator: (request) => subjects.get(request) ?? '' })

  fastify.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.config.skipRateLimit === true) return
    const subject = subjectOf(request)
    if (subject !== undefined) subjects.set(request, subject)
    const result = subject === undefined ? await byAddress(request) : await bySubject(request)
    if (!result.isAllowed && result.isExceeded) return tooManyRequests(reply, limit, result.ttlInSeconds)
  })
}

async function registerCors (fastify: FastifyInstance, origins: string[]): Promise<void> {
  const allowed = new Set(origins)
  await fastify.register(cors, {
    // A function, so another origin gets no CORS header at all (and its preflight a 404).
    origin: (origin, callback) => { callback(null, origin !== undefined && allowed.has(origin)) },
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type'],
    exposedHeaders: ['Retry-After'],
    maxAge: 600
  })
}

async function shedding (fastify: FastifyInstance, options: SheddingOptions): Promise<void> {
  // CORS first: a 503 or 429 must still be readable by the browser client.
  if (options.corsOrigins.length > 0) await registerCors(fastify, options.corsOrigins)
  await registerUnderPressure(fastify, options)
  if (options.rateLimit !== undefined) await registerRateLimit(fastify, options.rateLimit)
}

export default fp(shedding, { name: 'org-phone-numbers-shedding', fastify: '5.x' })
