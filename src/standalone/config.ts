/**
 * Standalone server configuration, read from the environment once at start.
 * Every bad variable is reported together, each with what to change.
 */
import { DEFAULT_OPTIONS, isValidName } from '../../plugins/phone-numbers/index.js'

export interface ServerConfig {
  port: number
  host: string
  /** Unset: start the embedded development database. */
  mongodbUri: string | undefined
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
  verifyRoleInDatabase: boolean
  bodyLimit: number
  /** Driver: how long an operation waits for a reachable server before failing (503). */
  serverSelectionTimeoutMs: number
  /** Graceful shutdown: how long in-flight requests may take before the process exits anyway. */
  shutdownTimeoutMs: number
}

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
    const value = Number(raw)
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name}=${raw} must be an integer from ${min} to ${max}`)
      return fallback
    }
    return value
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

  const mongodbUri = optionalText('MONGODB_URI')
  if (mongodbUri !== undefined && !/^mongodb(\+srv)?:\/\//.test(mongodbUri)) {
    problems.push('MONGODB_URI must start with mongodb:// or mongodb+srv:// (unset it to use the embedded development database)')
  }
  const jwtSecret = optionalText('JWT_SECRET')
  if (jwtSecret === undefined && mongodbUri !== undefined) {
    problems.push('JWT_SECRET is required when MONGODB_URI is set (at least 32 characters, e.g. `openssl rand -hex 32`)')
  } else if (jwtSecret !== undefined && jwtSecret.length < 32) {
    problems.push('JWT_SECRET must be at least 32 characters long')
  }
  const logLevel = text('LOG_LEVEL', 'info')
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL=${logLevel} must be one of ${LOG_LEVELS.join(', ')}`)

  const config: ServerConfig = {
    port: integer('PORT', 2212, 0, 65535),
    host: text('HOST', '127.0.0.1'),
    mongodbUri,
    defaultDatabaseName: name('MONGODB_DATABASE', 'tether'),
    jwtSecret,
    jwtIssuer: optionalText('JWT_ISSUER'),
    jwtAudience: optionalText('JWT_AUDIENCE'),
    usersCollection: name('USERS_COLLECTION', DEFAULT_OPTIONS.usersCollection),
    organizationsCollection: name('ORGANIZATIONS_COLLECTION', DEFAULT_OPTIONS.organizationsCollection),
    phoneNumbersField: name('PHONE_NUMBERS_FIELD', DEFAULT_OPTIONS.phoneNumbersField),
    logLevel,
    requestLogging: flag('REQUEST_LOGGING', true),
    serveOpenapi: flag('SERVE_OPENAPI', true),
    verifyRoleInDatabase: flag('VERIFY_ROLE_IN_DATABASE', false),
    bodyLimit: integer('BODY_LIMIT', DEFAULT_OPTIONS.bodyLimit, 256, 1_048_576),
    serverSelectionTimeoutMs: integer('MONGODB_SERVER_SELECTION_TIMEOUT_MS', 2000, 100, 60_000),
    shutdownTimeoutMs: integer('SHUTDOWN_TIMEOUT_MS', 10_000, 100, 120_000)
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return config
}
