/**
 * How the plugin's operations appear in a host's @fastify/swagger document:
 * as schemas/openapi.yaml writes them (summary, description, tags, security,
 * response descriptions and examples), with the contract's component schemas
 * shared by reference instead of inlined once per use.
 *
 * - The route schemas Fastify validates and serialises with are left exactly
 *   as generated. Each route gets a route-level `swaggerTransform` (a
 *   @fastify/swagger feature) that hands @fastify/swagger the documented form
 *   of its operation, built here from the contract itself.
 * - The component schemas are added with `addSchema` under prefixed `$id`s, in
 *   a context of their own that holds no route: @fastify/swagger collects the
 *   schemas of every context and emits them in `components.schemas`, while no
 *   validator or serializer ever sees them. Two registrations of the plugin
 *   (sibling scopes) each get such a context, so their ids never collide.
 * - The security schemes and tags the operations name are added to the
 *   document when the host did not declare them, so "Try it out" sends the
 *   bearer token without any host setup. A host's own definition wins.
 * - `operationIdPrefix` is put before each operationId of this document only
 *   (the served openapi.yaml keeps the contract's ids): two registrations in
 *   one document would otherwise repeat six operationIds, which OpenAPI
 *   forbids and code generators reject (openapi-typescript: duplicate
 *   identifiers).
 */
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify'
import { openapiDocument } from '../../schemas/generated/openapi-document.js'

/** Prefix of the `$id`s the plugin's component schemas are added under. */
export const SCHEMA_ID_PREFIX = 'OrgPhoneNumbers.'

type Json = Record<string, unknown>

const SCHEMA_REF = '#/components/schemas/'
const RESPONSE_REF = '#/components/responses/'
const PARAMETER_REF = '#/components/parameters/'
const HEADER_REF = '#/components/headers/'
const OPERATION_KEYS = ['operationId', 'summary', 'description', 'tags', 'security']

function isJson (value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function member (node: unknown, key: string): Json {
  const value = isJson(node) ? node[key] : undefined
  return isJson(value) ? value : {}
}

const components = member(openapiDocument, 'components')

/** A deep copy with `#/components/schemas/X` refs pointing at the added schema `X`. */
function withSharedRefs (node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withSharedRefs)
  if (!isJson(node)) return node
  const copy: Json = {}
  for (const [key, value] of Object.entries(node)) {
    copy[key] = key === '$ref' && typeof value === 'string' && value.startsWith(SCHEMA_REF)
      ? `${SCHEMA_ID_PREFIX}${value.slice(SCHEMA_REF.length)}#`
      : withSharedRefs(value)
  }
  return copy
}

/** The component schemas `node` refers to, directly or through other components. */
function referencedComponents (node: unknown, found = new Set<string>()): Set<string> {
  if (Array.isArray(node)) {
    for (const item of node) referencedComponents(item, found)
  } else if (isJson(node)) {
    const ref = node['$ref']
    if (typeof ref === 'string' && ref.startsWith(SCHEMA_REF) && !found.has(ref.slice(SCHEMA_REF.length))) {
      const name = ref.slice(SCHEMA_REF.length)
      found.add(name)
      referencedComponents(member(components, 'schemas')[name], found)
    }
    for (const value of Object.values(node)) referencedComponents(value, found)
  }
  return found
}

/** Every operation of the contract, keyed by operationId. */
function contractOperations (): Map<string, Json> {
  const operations = new Map<string, Json>()
  for (const item of Object.values(member(openapiDocument, 'paths'))) {
    for (const operation of Object.values(isJson(item) ? item : {})) {
      if (isJson(operation) && typeof operation['operationId'] === 'string') operations.set(operation['operationId'], operation)
    }
  }
  return operations
}

const operations = contractOperations()

/** `node`, or the component its `$ref` names when it starts with `prefix` (a parameter, response or header). */
function resolved (node: unknown, prefix: string, section: string): unknown {
  const ref = isJson(node) ? node['$ref'] : undefined
  return typeof ref === 'string' && ref.startsWith(prefix) ? member(components, section)[ref.slice(prefix.length)] : node
}

/** `in: path|query|header` parameters as the object schemas @fastify/swagger turns back into parameters. */
function parameterSchemas (operation: Json): Json {
  const slots: Json = {}
  const parameters = (Array.isArray(operation['parameters']) ? operation['parameters'] : []).map((parameter) => resolved(parameter, PARAMETER_REF, 'parameters')).filter(isJson)
  for (const [location, slot] of [['path', 'params'], ['query', 'querystring'], ['header', 'headers']] as const) {
    const mine = parameters.filter((parameter) => parameter['in'] === location)
    if (mine.length === 0) continue
    const properties: Json = {}
    for (const parameter of mine) {
      properties[String(parameter['name'])] = {
        ...(withSharedRefs(parameter['schema']) as Json),
        ...(typeof parameter['description'] === 'string' ? { description: parameter['description'] } : {}),
        // @fastify/swagger moves a single `examples` entry to the parameter's `example`.
        ...('example' in parameter ? { examples: [parameter['example']] } : {})
      }
    }
    const required = mine.filter((parameter) => parameter['required'] === true).map((parameter) => String(parameter['name']))
    slots[slot] = { type: 'object', properties, ...(required.length > 0 ? { required } : {}) }
  }
  return slots
}

/** A response, through `#/components/responses/*`, in @fastify/swagger's `{ description, headers, content }` form. */
function responseSchema (response: unknown): Json {
  const found = resolved(response, RESPONSE_REF, 'responses')
  const headers: Json = {}
  for (const [name, value] of Object.entries(member(found, 'headers'))) {
    const header = resolved(value, HEADER_REF, 'headers')
    // @fastify/swagger writes each as `{ schema, description }`.
    headers[name] = { ...(withSharedRefs(member(header, 'schema')) as Json), ...(isJson(header) && typeof header['description'] === 'string' ? { description: header['description'] } : {}) }
  }
  return {
    description: isJson(found) ? found['description'] : undefined,
    ...(Object.keys(headers).length > 0 ? { headers } : {}),
    content: withSharedRefs(member(found, 'content'))
  }
}

/** The operation as @fastify/swagger should document it. */
function documentedSchema (operation: Json): FastifySchema {
  const schema: Json = {}
  for (const [key, value] of Object.entries(operation)) {
    if (OPERATION_KEYS.includes(key) || key.startsWith('x-')) schema[key] = value
  }
  Object.assign(schema, parameterSchemas(operation))
  const body = member(operation, 'requestBody')
  if (isJson(body['content'])) schema['body'] = { content: withSharedRefs(body['content']) }
  const response: Json = {}
  for (const [status, value] of Object.entries(member(operation, 'responses'))) response[status] = responseSchema(value)
  schema['response'] = response
  return schema
}

interface DocumentParts {
  components?: { securitySchemes?: Record<string, unknown> }
  tags?: Array<{ name: string }>
}

/** Adds the contract's definition of each scheme and tag the operation names, unless the host has its own. */
function declareSchemesAndTags (document: DocumentParts, operation: Json): void {
  const schemes = member(components, 'securitySchemes')
  const security = Array.isArray(operation['security']) ? operation['security'].filter(isJson) : []
  for (const name of security.flatMap((requirement) => Object.keys(requirement))) {
    const declared = document.components?.securitySchemes ?? {}
    // A new object each time: the host's option object is not modified.
    if (!(name in declared) && name in schemes) document.components = { ...document.components, securitySchemes: { ...declared, [name]: schemes[name] } }
  }
  const contractTags = Array.isArray(openapiDocument['tags']) ? openapiDocument['tags'].filter(isJson) : []
  const tags = Array.isArray(operation['tags']) ? operation['tags'] : []
  for (const name of tags) {
    const known = document.tags ?? []
    const tag = contractTags.find((candidate) => candidate['name'] === name)
    if (tag !== undefined && !known.some((candidate) => candidate.name === name)) document.tags = [...known, { ...tag, name: String(name) }]
  }
}

interface TransformInput {
  schema: FastifySchema
  url: string
  openapiObject?: DocumentParts
}

/** The route-level `swaggerTransform` of one operation. */
function swaggerTransformFor (operation: Json, operationIdPrefix: string): (input: TransformInput) => { schema: FastifySchema, url: string } {
  const documented: Json = { ...documentedSchema(operation), operationId: `${operationIdPrefix}${String(operation['operationId'])}` }
  return ({ schema, url, openapiObject }) => {
    // Swagger 2.0 documents (no openapiObject) keep the route schema as it is.
    if (openapiObject === undefined) return { schema, url }
    declareSchemesAndTags(openapiObject, operation)
    return { schema: documented, url }
  }
}

/** The shared schemas the given operations refer to, with their `$id`s. */
export function sharedSchemasOf (operationIds: readonly string[]): Json[] {
  const names = new Set<string>()
  for (const id of operationIds) referencedComponents(operations.get(id), names)
  const schemas = member(components, 'schemas')
  return [...names].map((name) => ({ $id: `${SCHEMA_ID_PREFIX}${name}`, ...(withSharedRefs(schemas[name]) as Json) }))
}

/**
 * Call before adding the routes: adds the shared schemas of `routes`
 * operations and gives each route of this context its documented form.
 */
export async function describeForHostOpenapi (fastify: FastifyInstance, routes: ReadonlyArray<{ schema: { operationId: string } }>, operationIdPrefix = ''): Promise<void> {
  const shared = sharedSchemasOf(routes.map((route) => route.schema.operationId))
  await fastify.register(async function orgPhoneNumbersSchemas (context) {
    for (const schema of shared) {
      // A host scope that already holds the id keeps its own (the prefix makes that unlikely).
      if (context.getSchema(String(schema['$id'])) === undefined) context.addSchema(schema)
    }
  })
  fastify.addHook('onRoute', (route: RouteOptions) => {
    const operationId = (route.schema as { operationId?: unknown } | undefined)?.operationId
    const operation = typeof operationId === 'string' ? operations.get(operationId) : undefined
    if (operation !== undefined) route.config = { ...route.config, swaggerTransform: swaggerTransformFor(operation, operationIdPrefix) }
  })
}
