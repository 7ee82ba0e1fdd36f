/**
 * Standalone server configuration, read from the environment once at start.
 * Every bad variable is reported together, each with what to change.
 */
import { resolve } from 'node:path'
import { getHeapStatistics } from 'node:v8'
import { databaseNameOf, databaseNameProblem } from '../tools/database-uri.js'
import { DEFAULT_OPTIONS, DEFAULT_ROUTE_CACHE_OPTIONS, isReservedUserField, isValidName, RESERVED_USER_FIELDS } from '../plugins/phone-numbers/index.js'

function uriProblems (uri: string): string[] {
  if (!/^mongodb(\+srv)?:\/\//.test(uri)) return ['MONGODB_URI must start with mongodb:// or mongodb+srv:// (unset it to use the embedded development database)']
  let name: string | undefined
  try {
    name = databaseNameOf(uri)
  } catch {
    return ['MONGODB_URI has a broken %-escape in its database name']
  }
  const problem = name === undefined ? undefined : databaseNameProblem(name)
  return problem === undefined ? [] : [`MONGODB_URI names the database ${JSON.stringify(name)}, which ${problem}`]
}

/**
 * Why a secret is too weak to sign tokens, or undefined. Length alone lets
 * 32 × 'a' or 40 spaces through; this also asks for varied characters and
 * about 128 bits by a per-character (Shannon) estimate, which a random hex
 * or base64 secret of 32+ characters passes with room to spare.
 */
export function secretWeakness (secret: string): string | undefined {
  if (secret.length < 32) return 'must be at least 32 characters long'
  if (secret.trim() !== secret) return 'must not start or end with white space'
  const counts = new Map<string, number>()
  for (const character of secret) counts.set(character, (counts.get(character) ?? 0) + 1)
  let bitsPerCharacter = 0
  for (const count of counts.values()) {
    const p = count / secret.length
    bitsPerCharacter -= p * Math.log2(p)
  }
  if (counts.size < 10 || bitsPerCharacter * secret.length < 128) return 'looks guessable (too few distinct characters); use a random secret'
  return undefined
}

export interface ServerConfig {
  port: number
  host: string
  /** Unset: start the embedded development database (development mode only). */
  mongodbUri: string | undefined
  /**
   * Embedded database, demo data and (with a generated secret) a printed token.
   * On when neither MONGODB_URI nor JWT_SECRET is set, or with DEVELOPMENT_MODE=true.
   */
  developmentMode: boolean
  /** Used when the URI names no database. */
  defaultDatabaseName: string
  /** Unset only on the embedded database, where a development secret is generated. */
  jwtSecret: string | undefined
  jwtIssuer: string | undefined
  jwtAudience: string | undefined
  usersCollection: string
  organizationsCollection: string
  phoneNumbersField: string
  logLevel: string
  requestLogging: boolean
  serveOpenapi: boolean
  /** The API reference page at /docs (Swagger UI from the package, no CDN); `/` redirects to it. */
  serveDocs: boolean
  verifyRoleInDatabase: boolean
  bodyLimit: number
  /** Most numbers one user may hold. */
  maxNumbersPerUser: number
  /** Collection of the number claims. */
  claimsCollection: string
  /** How long another process's claim on a number stays its own, ms. */
  inFlightGraceMs: number
  /** Token roles (`role` claim) that may call the inbound-route lookup. */
  routeLookupRoles: string[]
  /** Longest accepted token lifetime (exp from now), seconds; undefined: no limit. */
  jwtMaxLifetimeSeconds: number | undefined
  /** Driver: how long an operation waits for a reachable server before failing (503). */
  serverSelectionTimeoutMs: number
  /** Graceful shutdown: how long in-flight requests may take before the process exits anyway. */
  shutdownTimeoutMs: number
  /** A whole request (headers and body) must arrive within this time, else 408 and the socket closes. */
  requestTimeoutMs: number
  /** The request headers must arrive within this time. */
  headersTimeoutMs: number
  /** An idle keep-alive connection is closed after this time. */
  keepAliveTimeoutMs: number
  /** Answer 503 while the mean event-loop delay exceeds this (ms); 0: off. */
  maxEventLoopDelayMs: number
  /** Answer 503 while the event-loop utilization exceeds this (0–1); 0: off. */
  maxEventLoopUtilization: number
  /** Answer 503 while the V8 heap in use exceeds this (MiB); 0: off. */
  maxHeapUsedMb: number
  /** Retry-After of those 503 answers (s). */
  retryAfterSeconds: number
  /** Requests per window per token subject or client address; undefined: no rate limit. */
  rateLimitMax: number | undefined
  rateLimitWindowMs: number
  /** Browser origins allowed by CORS (exact); empty: no CORS headers. */
  corsOrigins: string[]
  /** Collection of the change log. */
  eventsCollection: string
  /** Delete events older than this; undefined: keep them. */
  eventRetentionDays: number | undefined
  /** The log shows events at least this old (ms). */
  eventVisibilityDelayMs: number
  /** How often events a crashed process left behind are looked for (ms). */
  eventSweepIntervalMs: number
  /** Where every change event is POSTed, signed with `webhookSecret`; undefined: no webhook. */
  webhook: WebhookConfig | undefined
  /** Development mode: the folder the embedded database keeps its data in (DEV_DATA_DIR, default .data). */
  devDataDir: string
  /** Development mode: start with an empty database (DEV_DATABASE_FRESH; also `npm start -- --fresh`). */
  devDatabaseFresh: boolean
  /** Prometheus text at /metrics, without auth. */
  metrics: boolean
  /** Serve /metrics on this port (and HOST) instead of the API port; undefined: on the API port. */
  metricsPort: number | undefined
  /** The inbound-route cache (docs/route-cache.md); undefined: off. */
  routeCache: RouteCacheConfig | undefined
}

export interface RouteCacheConfig {
  maxEntries: number
  ttlMs: number
  followIntervalMs: number
  maxFollowerLagMs: number
}

export interface WebhookConfig {
  url: string
  secret: string
  maxAttempts: number
  retryBaseMs: number
  retryMaxMs: number
  leaseMs: number
}

// Shed load at 90% of V8's heap limit (it follows --max-old-space-size): past it, GC pauses grow until the process dies.
const DEFAULT_MAX_HEAP_USED_MB = Math.floor(getHeapStatistics().heap_size_limit * 0.9 / 1024 / 1024)

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export class ConfigError extends Error {
  constructor (readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`)
    this.name = 'ConfigError'
  }
}

export function readConfig (env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const problems: string[] = []

  function text (name: string, fallback: string): string {
    const value = env[name]
    return value === undefined || value === '' ? fallback : value
  }
  function optionalText (name: string): string | undefined {
    const value = env[name]
    return value === undefined || value === '' ? undefined : value
  }
  function integer (name: string, fallback: number, min: number, max: number): number {
    const raw = env[name]
    if (raw === undefined || raw === '') return fallback
    // Plain decimal digits only: Number() would also take 0x10, 1e3 or ' 8 '.
    const value = /^\d{1,10}$/.test(raw) ? Number(raw) : Number.NaN
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name}=${raw} must be an integer from ${min} to ${max}`)
      return fallback
    }
    return value
  }
  function optionalInteger (name: string, min: number, max: number): number | undefined {
    const raw = env[name]
    return raw === undefined || raw === '' ? undefined : integer(name, min, min, max)
  }
  function flag (name: string, fallback: boolean): boolean {
    const raw = env[name]
    if (raw === undefined || raw === '') return fallback
    if (raw === 'true' || raw === '1') return true
    if (raw === 'false' || raw === '0') return false
    problems.push(`${name}=${raw} must be true or false`)
    return fallback
  }
  function name (variable: string, fallback: string): string {
    const value = text(variable, fallback)
    if (!isValidName(value)) problems.push(`${variable}=${value} must not contain '$', '.' or NUL`)
    return value
  }
  function databaseName (variable: string, fallback: string): string {
    const value = text(variable, fallback)
    const problem = databaseNameProblem(value)
    if (problem !== undefined) problems.push(`${variable}=${value} ${problem}`)
    return value
  }
  function field (variable: string, fallback: string): string {
    const value = name(variable, fallback)
    if (isReservedUserField(value)) problems.push(`${variable}=${value} would overwrite a user field the plugin reads (${RESERVED_USER_FIELDS.join(', ')}); choose another name`)
    return value
  }

  function roles (variable: string, fallback: string[]): string[] {
    const raw = optionalText(variable)
    if (raw === undefined) return fallback
    const list = raw.split(',').map((role) => role.trim())
    if (list.some((role) => !/^[\w.:-]{1,64}$/.test(role))) problems.push(`${variable}=${raw} must be a comma-separated list of role names (letters, digits, _ . : -)`)
    return list
  }
  function fraction (variable: string, fallback: number): number {
    const raw = optionalText(variable)
    if (raw === undefined) return fallback
    const value = /^(0|1|0?\.\d{1,6})$/.test(raw) ? Number(raw) : Number.NaN
    if (Number.isNaN(value)) problems.push(`${variable}=${raw} must be a number from 0 to 1, e.g. 0.98 (0: off)`)
    return Number.isNaN(value) ? fallback : value
  }
  function origins (variable: string): string[] {
    const raw = optionalText(variable)
    if (raw === undefined) return []
    const list = raw.split(',').map((origin) => origin.trim())
    // Browsers send the origin as scheme://host[:port], never with a path or a trailing slash.
    const bad = list.filter((origin) => !URL.canParse(origin) || new URL(origin).origin !== origin)
    if (bad.length > 0) problems.push(`${variable} must list exact origins such as https://app.example.com (no path, no trailing slash): ${bad.map((origin) => JSON.stringify(origin)).join(', ')}`)
    return list
  }

  const mongodbUri = optionalText('MONGODB_URI')
  if (mongodbUri !== undefined) problems.push(...uriProblems(mongodbUri))
  const jwtSecret = optionalText('JWT_SECRET')
  const developmentFlag = flag('DEVELOPMENT_MODE', false)
  if (jwtSecret === undefined && mongodbUri !== undefined) {
    problems.push('JWT_SECRET is required when MONGODB_URI is set (at least 32 characters, e.g. `openssl rand -hex 32`)')
  } else if (jwtSecret !== undefined) {
    const weakness = secretWeakness(jwtSecret)
    if (weakness !== undefined) problems.push(`JWT_SECRET ${weakness} (e.g. \`openssl rand -hex 32\`)`)
  }
  // A real secret without a database is a misconfiguration (a misspelt MONGODB_URI, say),
  // not a request for the embedded development database.
  if (jwtSecret !== undefined && mongodbUri === undefined && !developmentFlag) {
    problems.push('MONGODB_URI is not set, but JWT_SECRET is: set MONGODB_URI, or unset JWT_SECRET for development mode (DEVELOPMENT_MODE=true runs the embedded database with your secret and prints no token)')
  }
  const logLevel = text('LOG_LEVEL', 'info')
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL=${logLevel} must be one of ${LOG_LEVELS.join(', ')}`)

  const requestTimeoutMs = integer('REQUEST_TIMEOUT_MS', 10_000, 1000, 600_000)
  const headersTimeoutMs = integer('HEADERS_TIMEOUT_MS', 5000, 500, 600_000)
  // Node refuses a headers timeout longer than the request timeout.
  if (headersTimeoutMs > requestTimeoutMs) problems.push(`HEADERS_TIMEOUT_MS=${headersTimeoutMs} must not exceed REQUEST_TIMEOUT_MS=${requestTimeoutMs}`)

  const webhookUrl = optionalText('WEBHOOK_URL')
  const webhookSecret = optionalText('WEBHOOK_SECRET')
  if ((webhookUrl === undefined) !== (webhookSecret === undefined)) problems.push('WEBHOOK_URL and WEBHOOK_SECRET go together: set both to deliver events, or neither')
  if (webhookUrl !== undefined && !URL.canParse(webhookUrl)) problems.push(`WEBHOOK_URL=${webhookUrl} must be an absolute http(s) URL`)
  else if (webhookUrl !== undefined && !/^https?:$/.test(new URL(webhookUrl).protocol)) problems.push(`WEBHOOK_URL=${webhookUrl} must use http or https`)
  if (webhookSecret !== undefined && webhookSecret.length < 32) problems.push('WEBHOOK_SECRET must be at least 32 characters (e.g. `openssl rand -hex 32`)')
  const webhook: WebhookConfig | undefined = webhookUrl === undefined || webhookSecret === undefined
    ? undefined
    : {
        url: webhookUrl,
        secret: webhookSecret,
        maxAttempts: integer('WEBHOOK_MAX_ATTEMPTS', 25, 1, 1000),
        retryBaseMs: integer('WEBHOOK_RETRY_BASE_MS', 1000, 10, 3_600_000),
        retryMaxMs: integer('WEBHOOK_RETRY_MAX_MS', 300_000, 10, 86_400_000),
        leaseMs: integer('WEBHOOK_LEASE_MS', 30_000, 1000, 3_600_000)
      }

  const config: ServerConfig = {
    port: integer('PORT', 2212, 0, 65535),
    host: text('HOST', '127.0.0.1'),
    mongodbUri,
    developmentMode: mongodbUri === undefined,
    defaultDatabaseName: databaseName('MONGODB_DATABASE', 'tether'),
    jwtSecret,
    jwtIssuer: optionalText('JWT_ISSUER'),
    jwtAudience: optionalText('JWT_AUDIENCE'),
    usersCollection: name('USERS_COLLECTION', DEFAULT_OPTIONS.usersCollection),
    organizationsCollection: name('ORGANIZATIONS_COLLECTION', DEFAULT_OPTIONS.organizationsCollection),
    phoneNumbersField: field('PHONE_NUMBERS_FIELD', DEFAULT_OPTIONS.phoneNumbersField),
    logLevel,
    requestLogging: flag('REQUEST_LOGGING', true),
    serveOpenapi: flag('SERVE_OPENAPI', true),
    serveDocs: flag('SERVE_DOCS', true),
    verifyRoleInDatabase: flag('VERIFY_ROLE_IN_DATABASE', false),
    bodyLimit: integer('BODY_LIMIT', DEFAULT_OPTIONS.bodyLimit, 256, 1_048_576),
    maxNumbersPerUser: integer('MAX_NUMBERS_PER_USER', DEFAULT_OPTIONS.maxNumbersPerUser, 1, 10_000),
    claimsCollection: name('CLAIMS_COLLECTION', DEFAULT_OPTIONS.claimsCollection),
    inFlightGraceMs: integer('IN_FLIGHT_GRACE_MS', DEFAULT_OPTIONS.inFlightGraceMs, 1, 10_000),
    routeLookupRoles: roles('ROUTE_LOOKUP_ROLES', ['SUPERADMIN']),
    jwtMaxLifetimeSeconds: optionalInteger('JWT_MAX_LIFETIME_S', 1, 31_536_000),
    serverSelectionTimeoutMs: integer('MONGODB_SERVER_SELECTION_TIMEOUT_MS', 2000, 100, 60_000),
    shutdownTimeoutMs: integer('SHUTDOWN_TIMEOUT_MS', 10_000, 100, 120_000),
    requestTimeoutMs,
    headersTimeoutMs,
    keepAliveTimeoutMs: integer('KEEP_ALIVE_TIMEOUT_MS', 5000, 100, 600_000),
    maxEventLoopDelayMs: integer('MAX_EVENT_LOOP_DELAY_MS', 1000, 0, 60_000),
    maxEventLoopUtilization: fraction('MAX_EVENT_LOOP_UTILIZATION', 0),
    maxHeapUsedMb: integer('MAX_HEAP_USED_MB', DEFAULT_MAX_HEAP_USED_MB, 0, 1_048_576),
    retryAfterSeconds: integer('RETRY_AFTER_S', 10, 1, 3600),
    rateLimitMax: optionalInteger('RATE_LIMIT_MAX', 1, 1_000_000),
    rateLimitWindowMs: integer('RATE_LIMIT_WINDOW_MS', 60_000, 1000, 86_400_000),
    corsOrigins: origins('CORS_ORIGINS'),
    eventsCollection: name('EVENTS_COLLECTION', DEFAULT_OPTIONS.eventsCollection),
    eventRetentionDays: optionalInteger('EVENT_RETENTION_DAYS', 1, 36_500),
    eventVisibilityDelayMs: integer('EVENT_VISIBILITY_DELAY_MS', DEFAULT_OPTIONS.eventVisibilityDelayMs, 1, 600_000),
    eventSweepIntervalMs: integer('EVENT_SWEEP_INTERVAL_MS', DEFAULT_OPTIONS.eventSweepIntervalMs, 100, 3_600_000),
    webhook,
    devDataDir: resolve(text('DEV_DATA_DIR', '.data')),
    devDatabaseFresh: flag('DEV_DATABASE_FRESH', false),
    metrics: flag('METRICS', false),
    metricsPort: optionalInteger('METRICS_PORT', 1, 65535),
    routeCache: flag('ROUTE_CACHE', true)
      ? {
          maxEntries: integer('ROUTE_CACHE_MAX_ENTRIES', DEFAULT_ROUTE_CACHE_OPTIONS.maxEntries, 1, 10_000_000),
          ttlMs: integer('ROUTE_CACHE_TTL_MS', DEFAULT_ROUTE_CACHE_OPTIONS.ttlMs, 100, 3_600_000),
          followIntervalMs: integer('ROUTE_CACHE_FOLLOW_INTERVAL_MS', DEFAULT_ROUTE_CACHE_OPTIONS.followIntervalMs, 10, 60_000),
          maxFollowerLagMs: integer('ROUTE_CACHE_MAX_FOLLOWER_LAG_MS', DEFAULT_ROUTE_CACHE_OPTIONS.maxFollowerLagMs, 50, 600_000)
        }
      : undefined
  }
  if (config.routeCache !== undefined && config.routeCache.followIntervalMs >= config.routeCache.maxFollowerLagMs) {
    problems.push(`ROUTE_CACHE_FOLLOW_INTERVAL_MS=${config.routeCache.followIntervalMs} must be below ROUTE_CACHE_MAX_FOLLOWER_LAG_MS=${config.routeCache.maxFollowerLagMs}, or the cache is never used`)
  }
  if (config.metricsPort !== undefined && !config.metrics) problems.push(`METRICS_PORT=${config.metricsPort} serves metrics only with METRICS=true: set it too, or unset METRICS_PORT`)
  if (config.metricsPort !== undefined && config.metricsPort === config.port) problems.push(`METRICS_PORT=${config.metricsPort} must differ from PORT (unset it to serve /metrics on the API port)`)
  if (problems.length > 0) throw new ConfigError(problems)
  return config
}
