/**
 * Bearer-token authentication and the SUPERADMIN check for the phone-number
 * routes. Registered inside the routes' own encapsulation context, so the
 * hook never runs on the host's routes.
 *
 * Auth runs in `onRequest`, before body parsing and validation: a caller
 * without a valid token learns nothing about the schema (401 first).
 */
import jwt, { type FastifyJWTOptions, type TokenOrHeader } from '@fastify/jwt'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ForbiddenError, RouteLookupForbiddenError, UnauthorizedError } from './errors.js'
import type { PhoneNumberStore } from '../../src/domain/store.js'

export type HmacAlgorithm = 'HS256' | 'HS384' | 'HS512'
export type PublicKeyAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA'

/** The verified token payload. Default claims are `{ sub, role }`. */
export interface CallerClaims {
  sub?: string
  role?: string
  [claim: string]: unknown
}

interface LifetimeCheck {
  /**
   * Longest accepted token lifetime in seconds: a token whose `exp` lies
   * further ahead, or whose `iat` lies in the future, is refused. Default: no limit.
   */
  maxLifetimeSeconds?: number | undefined
}

interface ClaimChecks extends LifetimeCheck {
  /** Accepted `iss` values; when set, every token must carry one of them. */
  issuer?: string | string[] | undefined
  /** Accepted `aud` values; when set, every token must carry one of them. */
  audience?: string | string[] | undefined
}

/** HMAC secret shared with the token issuer (HS256 unless `algorithms` says otherwise). */
export interface SecretAuthOptions extends ClaimChecks {
  secret: string | Buffer
  algorithms?: HmacAlgorithm[] | undefined
}

/** Issuer's public key (PEM); `algorithms` is required so a key is never tried with another algorithm. */
export interface PublicKeyAuthOptions extends ClaimChecks {
  publicKey: string | Buffer
  algorithms: PublicKeyAlgorithm[]
}

/** Resolves the verification key per token, e.g. from a JWKS endpoint by `kid`. */
export interface KeyResolverAuthOptions extends ClaimChecks {
  getKey: (token: { header: { alg: string, kid?: string }, payload: CallerClaims }) => Promise<string | Buffer>
  algorithms: PublicKeyAlgorithm[]
}

/** Reuse the host's already registered @fastify/jwt (`request.jwtVerify()`), with its keys and checks. */
export interface HostJwtAuthOptions extends LifetimeCheck {
  useHostJwt: true
}

export type PhoneNumbersAuthOptions = SecretAuthOptions | PublicKeyAuthOptions | KeyResolverAuthOptions | HostJwtAuthOptions

export interface PhoneNumbersAuthPluginOptions {
  auth: PhoneNumbersAuthOptions
  isSuperAdmin: (claims: CallerClaims) => boolean
  /** Who may call the inbound-route lookup (a route whose config sets ROUTE_LOOKUP). */
  canLookUpInboundRoutes: (claims: CallerClaims) => boolean
  /** Re-read the caller (users collection, `_id` = `sub`) and apply `isSuperAdmin` to the stored document (all its fields but the numbers) on every request. */
  verifyRoleInDatabase: boolean
  store: PhoneNumberStore
}

/** Route config flag: the route is the inbound-route lookup, checked with `canLookUpInboundRoutes`. */
export const ROUTE_LOOKUP = 'orgPhoneNumbersRouteLookup'

/** The verified claims of each authorized request (kept off the request object, so the host's request type stays as it is). */
const callers = new WeakMap<FastifyRequest, CallerClaims>()

/** Who made a request, as its verified token says: recorded in the events of the changes it makes. */
export function actorOf (request: FastifyRequest): { sub: string | null, role: string | null } {
  const claims = callers.get(request)
  return {
    sub: typeof claims?.sub === 'string' ? claims.sub : null,
    role: typeof claims?.role === 'string' ? claims.role : null
  }
}

export const isSuperAdminRole = (claims: CallerClaims): boolean => claims.role === 'SUPERADMIN'

// Our own @fastify/jwt instance lives under a namespace with its own request
// decorators, so it cannot clash with a host that registered @fastify/jwt too.
const JWT_NAMESPACE = 'orgPhoneNumbers'
const JWT_VERIFY = 'orgPhoneNumbersJwtVerify'

const MISSING_HEADER = 'No Authorization was found in request.headers'
const NOT_BEARER = 'The Authorization header must use the Bearer scheme: Authorization: Bearer <token>'
const NO_EXP = 'The token has no exp claim; this API accepts only tokens that expire'
const KEY_UNRESOLVED = 'No key was found to verify the token'
const NOT_CANONICAL = 'The token\'s signature is not in canonical base64url'
// RFC 7235: the scheme is case-insensitive, and at least one space follows it.
const BEARER_SCHEME = /^Bearer\s/i
// Clock skew allowed between the token issuer and this server, for iat.
const CLOCK_SKEW_SECONDS = 60

/**
 * The last base64url character of a signature carries unused bits, so one
 * token has several spellings the verifier accepts alike; only the canonical
 * one is, so the token string can key a cache or a deny-list.
 */
function hasCanonicalSignature (header: string): boolean {
  const signature = header.slice(header.lastIndexOf('.') + 1)
  return Buffer.from(signature, 'base64url').toString('base64url') === signature
}

/** What is wrong with a verified token's lifetime, or undefined. */
function lifetimeProblem (claims: CallerClaims, maxLifetimeSeconds: number | undefined): string | undefined {
  const exp = claims['exp']
  // JSON reads 1e400 as Infinity, which the verifier takes for a time in the future.
  if (typeof exp === 'number' && !Number.isFinite(exp)) return 'The token\'s exp is not a finite time; this API accepts only tokens that expire'
  if (maxLifetimeSeconds === undefined) return undefined
  const now = Date.now() / 1000
  if (typeof exp === 'number' && exp - now > maxLifetimeSeconds) return `The token expires more than ${maxLifetimeSeconds} s from now, longer than this API accepts`
  if (typeof claims['iat'] === 'number' && claims['iat'] > now + CLOCK_SKEW_SECONDS) return 'The token was issued in the future (iat)'
  return undefined
}

type VerifyCaller = (request: FastifyRequest) => unknown

/** The parts of a @fastify/jwt namespace decorator used on the hot path. */
interface JwtNamespace {
  lookupToken: (request: FastifyRequest) => string
  verify: (token: string) => unknown
}

async function registerOwnJwt (fastify: FastifyInstance, auth: Exclude<PhoneNumbersAuthOptions, HostJwtAuthOptions>): Promise<VerifyCaller> {
  const secret: FastifyJWTOptions['secret'] = 'secret' in auth
    ? auth.secret
    : 'publicKey' in auth
      ? { public: auth.publicKey }
      : async (request: FastifyRequest, token: TokenOrHeader) => {
        try {
          return await auth.getKey(token as Parameters<KeyResolverAuthOptions['getKey']>[0])
        } catch (error) {
          // The resolver's own message (a key server's address, say) stays in the log.
          request.log.warn({ err: error }, 'org-phone-numbers: getKey found no key for the token')
          throw new UnauthorizedError(KEY_UNRESOLVED)
        }
      }
  await fastify.register(jwt, {
    secret,
    namespace: JWT_NAMESPACE,
    jwtVerify: JWT_VERIFY,
    decoratorName: 'orgPhoneNumbersCaller',
    // The key resolver needs the header (kid, alg), not only the payload.
    decode: { complete: 'getKey' in auth },
    verify: {
      algorithms: auth.algorithms ?? ['HS256'],
      // A configured issuer or audience is required, not only checked when present.
      requiredClaims: ['exp', ...(auth.issuer === undefined ? [] : ['iss']), ...(auth.audience === undefined ? [] : ['aud'])],
      ...(auth.issuer === undefined ? {} : { allowedIss: auth.issuer }),
      ...(auth.audience === undefined ? {} : { allowedAud: auth.audience }),
      // Verified tokens are cached (bounded LRU, honouring exp): the hot path
      // skips the signature check for a token it has already seen.
      cache: true
    }
  })
  if ('getKey' in auth) {
    // The key is resolved per token, asynchronously: @fastify/jwt's request path.
    return async (request) => await (request as unknown as Record<string, () => Promise<unknown>>)[JWT_VERIFY]!()
  }
  // A static key: the namespace's own header lookup and synchronous verifier
  // (same options, same cache), without the per-request callback chain of
  // request.jwtVerify(); measurably cheaper on every request, rejections included.
  const api = (fastify as unknown as { jwt: Record<string, JwtNamespace> }).jwt[JWT_NAMESPACE]!
  return (request) => api.verify(api.lookupToken(request))
}

function hostJwtVerify (fastify: FastifyInstance): VerifyCaller {
  if (!fastify.hasRequestDecorator('jwtVerify')) {
    throw new Error('org-phone-numbers: auth.useHostJwt needs @fastify/jwt registered on the host before this plugin')
  }
  return async (request) => {
    const payload = await (request as unknown as { jwtVerify: () => Promise<unknown> }).jwtVerify()
    // The host's own settings decide signature, iss and aud; an expiry is
    // this plugin's rule in every auth mode (its own verifier requires exp too).
    if (typeof (payload as { exp?: unknown } | null)?.exp !== 'number') throw new UnauthorizedError(NO_EXP)
    return payload
  }
}

function asClaims (payload: unknown): CallerClaims | undefined {
  return typeof payload === 'object' && payload !== null && !Array.isArray(payload) ? payload as CallerClaims : undefined
}

async function phoneNumbersAuth (fastify: FastifyInstance, options: PhoneNumbersAuthPluginOptions): Promise<void> {
  const { auth, isSuperAdmin, canLookUpInboundRoutes, verifyRoleInDatabase, store } = options
  const verifyCaller = 'useHostJwt' in auth ? hostJwtVerify(fastify) : await registerOwnJwt(fastify, auth)

  async function callerStillAllowed (claims: CallerClaims, isAllowed: (claims: CallerClaims) => boolean): Promise<boolean> {
    if (typeof claims.sub !== 'string') return false
    const stored = await store.findCaller(claims.sub)
    // The stored fields go through the same predicate as the token's claims.
    return stored !== undefined && isAllowed(stored as CallerClaims)
  }

  fastify.addHook('onRequest', async (request) => {
    // The commonest rejection, answered without building @fastify/jwt's error first.
    const header = request.headers.authorization
    if (header === undefined) throw new UnauthorizedError(MISSING_HEADER)
    if (!BEARER_SCHEME.test(header)) throw new UnauthorizedError(NOT_BEARER)
    if (!hasCanonicalSignature(header)) throw new UnauthorizedError(NOT_CANONICAL)
    let payload: unknown
    try {
      payload = await verifyCaller(request)
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode
      if (status !== undefined && status >= 500) throw error
      // @fastify/jwt answers a malformed header with 400; for this API any
      // token problem is "not authenticated".
      throw new UnauthorizedError((error as Error).message)
    }
    const claims = asClaims(payload)
    const problem = claims === undefined ? undefined : lifetimeProblem(claims, auth.maxLifetimeSeconds)
    if (problem !== undefined) throw new UnauthorizedError(problem)
    const lookup = (request.routeOptions.config as unknown as Record<string, unknown>)[ROUTE_LOOKUP] === true
    const isAllowed = lookup ? canLookUpInboundRoutes : isSuperAdmin
    const Refusal = lookup ? RouteLookupForbiddenError : ForbiddenError
    if (claims === undefined || !isAllowed(claims)) throw new Refusal()
    if (verifyRoleInDatabase && !await callerStillAllowed(claims, isAllowed)) throw new Refusal()
    callers.set(request, claims)
  })
}

export default fp(phoneNumbersAuth, { name: 'org-phone-numbers-auth', fastify: '5.x' })
