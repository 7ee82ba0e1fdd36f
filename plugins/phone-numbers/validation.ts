/**
 * Body parsing and schema validation for the phone-number routes, set on
 * their own encapsulation context so the host keeps its own settings.
 *
 * - Only application/json bodies are parsed (anything else: 415), with
 *   prototype and constructor poisoning rejected whatever the host allows.
 * - Bodies are never coerced: Fastify's default Ajv turns "true" into true
 *   for bodies too, which the contract forbids. Query strings are (all text:
 *   `limit=10` is the contract's integer). Ajv per context, every schema
 *   compiled once at startup.
 */
import { Ajv, type ErrorObject } from 'ajv'
import type { FastifyInstance } from 'fastify'
import { UnsupportedCharsetError, UnsupportedEncodingError, ValidationError } from './errors.js'

/** Fastify's default wording (`body/phoneNumber must match …`), built without a stack trace. */
function formatValidationErrors (errors: ErrorObject[], part: string): Error {
  return new ValidationError(errors.map((error) => `${part}${error.instancePath} ${messageOf(error)}`).join(', '))
}

/** Ajv's message, except that an enum names its values (Ajv says only "the allowed values"). */
function messageOf (error: ErrorObject): string {
  const allowed: unknown = error.keyword === 'enum' ? (error.params as { allowedValues?: unknown }).allowedValues : undefined
  if (Array.isArray(allowed)) return `must be one of: ${allowed.map(String).join(', ')}`
  return error.message ?? 'is invalid'
}

// JSON is UTF-8 (RFC 8259); a body declared in another charset would be read wrongly.
const CHARSET = /;\s*charset\s*=\s*"?([^";\s]+)"?/i

/**
 * Ajv lists `unicode` as deprecated yet still honours it, and warns on the console each time
 * an instance is built with it: two notices on every host's stderr per registration. Only
 * that notice is dropped; every other warning reaches the console as before.
 */
const AJV_LOGGER = {
  log: (...args: unknown[]): void => { console.log(...args) },
  warn: (...args: unknown[]): void => {
    if (typeof args[0] === 'string' && args[0].startsWith('DEPRECATED: option unicode.')) return
    console.warn(...args)
  },
  error: (...args: unknown[]): void => { console.error(...args) }
}

function declaredCharset (contentType: string | undefined): string | undefined {
  return contentType === undefined ? undefined : CHARSET.exec(contentType)?.[1]?.toLowerCase()
}

export function useStrictJsonBodies (fastify: FastifyInstance): void {
  fastify.removeAllContentTypeParsers()
  const parseJson = fastify.getDefaultJsonParser('error', 'error')
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const encoding = request.headers['content-encoding']
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
      // Bodies are never decompressed here; a labelled one is refused rather than read as plain JSON.
      done(new UnsupportedEncodingError(encoding), undefined)
      return
    }
    const charset = declaredCharset(request.headers['content-type'])
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      done(new UnsupportedCharsetError(charset), undefined)
      return
    }
    parseJson(request, body as string, done)
  })

  // `unicode: false`: maxLength counts UTF-16 units, as TypeBox does on the client (and JavaScript's
  // `length`, and a browser's maxlength), so a label both sides accept is the same label.
  const ajv = new Ajv({ coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: false, strict: true, unicode: false, logger: AJV_LOGGER })
  // A query string holds only text: `limit=10` is read as the number the contract declares.
  const queryAjv = new Ajv({ coerceTypes: true, useDefaults: false, removeAdditional: false, allErrors: false, strict: true, unicode: false, logger: AJV_LOGGER })
  fastify.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'querystring' ? queryAjv : ajv).compile(schema))
  fastify.setSchemaErrorFormatter((errors, part) => formatValidationErrors(errors as ErrorObject[], part))
}
