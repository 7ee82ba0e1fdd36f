/**
 * org-phone-numbers: the organization phone-number API as a Fastify plugin.
 *
 *   await app.register(orgPhoneNumbers, { auth: { secret: process.env.JWT_SECRET } })
 *
 * The plugin is wrapped with fastify-plugin only to expose the store as
 * `app.orgPhoneNumbers`; the routes, their auth hook, body parser, validator
 * and error handler live in a child context, so the host's own routes, error
 * format, JWT setup and hooks are left exactly as they were.
 */
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Db } from 'mongodb'
import { createPhoneNumberStore, type PhoneNumberStore } from '../../src/domain/store.js'
import openapiDocumentRoutes from './openapi-document.js'
import phoneNumbersAuth, { isSuperAdminRole, type CallerClaims, type PhoneNumbersAuthOptions } from './auth.js'
import { replyWithContractError } from './error-handler.js'
import phoneNumberRoutes from './routes.js'
import { useStrictJsonBodies } from './validation.js'

export type { CallerClaims, PhoneNumbersAuthOptions } from './auth.js'
export type { HmacAlgorithm, PublicKeyAlgorithm, SecretAuthOptions, PublicKeyAuthOptions, KeyResolverAuthOptions, HostJwtAuthOptions } from './auth.js'
export { isSuperAdminRole } from './auth.js'
export { createPhoneNumberStore } from '../../src/domain/store.js'
export type { PhoneNumberStore, PhoneNumberStoreOptions, AssignResult, RemoveResult, ListResult, ListedAssignment, AssignmentHolder } from '../../src/domain/store.js'
export type { StoredAssignment, AssignmentInput, AssignmentKey, Provider } from '../../src/domain/assignments.js'
export * from './errors.js'
export { replyToFrameworkError } from './error-handler.js'

export interface OrgPhoneNumbersOptions {
  /** How callers authenticate. Required. */
  auth: PhoneNumbersAuthOptions
  /** Database to use. Default: `fastify.mongo.db` from @fastify/mongodb, registered before this plugin. */
  db?: Db | undefined
  /** Path prefix for every route of the plugin. Default `''` (routes at /api/organizations/...). */
  prefix?: string
  /** Users collection. Default `users`. */
  usersCollection?: string | undefined
  /** Organizations collection. Default `organizations`. */
  organizationsCollection?: string | undefined
  /** User field holding the assignments array. Default `phoneNumbers`. */
  phoneNumbersField?: string | undefined
  /** Who may call the API. Default: `claims.role === 'SUPERADMIN'`. */
  isSuperAdmin?: ((claims: CallerClaims) => boolean) | undefined
  /** Re-check the caller's role in the users collection on every request (one extra query). Default false. */
  verifyRoleInDatabase?: boolean | undefined
  /** Create the indexes the store relies on at startup. Default true. */
  createIndexes?: boolean | undefined
  /** Largest accepted request body, in bytes. Default 16384. */
  bodyLimit?: number | undefined
  /** Compare-and-swap attempts per write under contention before answering 409. Default 10. */
  maxWriteAttempts?: number | undefined
  /** Also serve GET /openapi.json and /openapi.yaml. Default false. */
  serveOpenapi?: boolean | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The phone-number store the routes use (also for inbound routing: `findHolder`). */
    orgPhoneNumbers: PhoneNumberStore
  }
}

const DEFAULT_BODY_LIMIT = 16_384

function optionError (message: string): Error {
  return new Error(`org-phone-numbers: ${message}`)
}

function checkName (name: string, value: unknown): void {
  if (value !== undefined && (typeof value !== 'string' || value.length === 0 || value.includes('$') || value.includes('.') || value.includes('\0'))) {
    throw optionError(`${name} must be a non-empty name without '$', '.' or NUL, got ${JSON.stringify(value)}`)
  }
}

function checkPositiveInteger (name: string, value: unknown): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < 1)) {
    throw optionError(`${name} must be a positive integer, got ${JSON.stringify(value)}`)
  }
}

function checkAuth (auth: unknown): void {
  if (typeof auth !== 'object' || auth === null) {
    throw optionError('auth is required: { secret }, { publicKey, algorithms }, { getKey, algorithms } or { useHostJwt: true }')
  }
  const given = auth as Record<string, unknown>
  const kinds = ['secret', 'publicKey', 'getKey', 'useHostJwt'].filter((kind) => given[kind] !== undefined)
  if (kinds.length !== 1) {
    throw optionError(`auth needs exactly one of secret, publicKey, getKey or useHostJwt, got ${kinds.length === 0 ? 'none' : kinds.join(', ')}`)
  }
  if (given['secret'] !== undefined && (typeof given['secret'] === 'string' ? given['secret'].length < 32 : !Buffer.isBuffer(given['secret']))) {
    throw optionError('auth.secret must be a string of at least 32 characters or a Buffer')
  }
  if ((given['publicKey'] !== undefined || given['getKey'] !== undefined) && (!Array.isArray(given['algorithms']) || given['algorithms'].length === 0)) {
    throw optionError('auth.algorithms is required with publicKey or getKey, e.g. [\'RS256\']')
  }
  if (given['algorithms'] !== undefined && Array.isArray(given['algorithms']) && given['algorithms'].some((alg) => typeof alg !== 'string' || alg === 'none')) {
    throw optionError('auth.algorithms must list algorithm names; "none" is never accepted')
  }
}

function checkOptions (options: OrgPhoneNumbersOptions): void {
  checkAuth(options.auth)
  checkName('usersCollection', options.usersCollection)
  checkName('organizationsCollection', options.organizationsCollection)
  checkName('phoneNumbersField', options.phoneNumbersField)
  checkPositiveInteger('bodyLimit', options.bodyLimit)
  checkPositiveInteger('maxWriteAttempts', options.maxWriteAttempts)
  if (options.isSuperAdmin !== undefined && typeof options.isSuperAdmin !== 'function') {
    throw optionError('isSuperAdmin must be a function (claims) => boolean')
  }
  if (options.prefix !== undefined && (typeof options.prefix !== 'string' || (options.prefix !== '' && !options.prefix.startsWith('/')))) {
    throw optionError(`prefix must be '' or start with '/', got ${JSON.stringify(options.prefix)}`)
  }
}

function resolveDb (fastify: FastifyInstance, options: OrgPhoneNumbersOptions): Db {
  if (options.db !== undefined) return options.db
  const mongo = (fastify as FastifyInstance & { mongo?: { db?: Db } }).mongo
  if (mongo?.db === undefined) {
    throw optionError('no database: pass options.db, or register @fastify/mongodb with a database name in its url before this plugin')
  }
  return mongo.db
}

async function orgPhoneNumbers (fastify: FastifyInstance, options: OrgPhoneNumbersOptions): Promise<void> {
  if (fastify.hasDecorator('orgPhoneNumbers')) {
    throw optionError('already registered in this context; register it once, or once per encapsulated context (e.g. inside fastify.register(async (api) => ...))')
  }
  checkOptions(options)
  const store = createPhoneNumberStore(resolveDb(fastify, options), options)
  if (options.createIndexes ?? true) await store.ensureIndexes()
  fastify.decorate('orgPhoneNumbers', store)

  await fastify.register(async function phoneNumbersContext (context) {
    useStrictJsonBodies(context)
    context.setErrorHandler(replyWithContractError)
    if (options.serveOpenapi === true) await context.register(openapiDocumentRoutes)
    await context.register(async function securedRoutes (secured) {
      await secured.register(phoneNumbersAuth, {
        auth: options.auth,
        isSuperAdmin: options.isSuperAdmin ?? isSuperAdminRole,
        verifyRoleInDatabase: options.verifyRoleInDatabase ?? false,
        store
      })
      await secured.register(phoneNumberRoutes, { store, bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT })
    })
  }, { prefix: options.prefix ?? '' })
}

export default fp(orgPhoneNumbers, { name: 'org-phone-numbers', fastify: '5.x' })
