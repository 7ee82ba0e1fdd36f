/**
 * Body parsing and schema validation for the phone-number routes, set on
 * their own encapsulation context so the host keeps its own settings.
 *
 * - Only application/json bodies are parsed (anything else: 415), with
 *   prototype and constructor poisoning rejected whatever the host allows.
 * - Validation never coerces types: Fastify's default Ajv turns "true" into
 *   true for bodies too, which the contract forbids. One Ajv per context,
 *   every schema compiled once at startup.
 */
import { Ajv, type ErrorObject } from 'ajv'
import type { FastifyInstance } from 'fastify'
import { ValidationError } from './errors.js'

/** Fastify's default wording (`body/phoneNumber must match …`), built without a stack trace. */
function formatValidationErrors (errors: ErrorObject[], part: string): Error {
  return new ValidationError(errors.map((error) => `${part}${error.instancePath} ${error.message ?? 'is invalid'}`).join(', '))
}

export function useStrictJsonBodies (fastify: FastifyInstance): void {
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, fastify.getDefaultJsonParser('error', 'error'))

  const ajv = new Ajv({ coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: false, strict: true })
  fastify.setValidatorCompiler(({ schema }) => ajv.compile(schema))
  fastify.setSchemaErrorFormatter((errors, part) => formatValidationErrors(errors as ErrorObject[], part))
}
