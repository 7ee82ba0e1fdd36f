/**
 * A host that registers @fastify/swagger before the plugin (as the README
 * shows) gets the plugin's operations documented as schemas/openapi.yaml
 * writes them: paths, methods, operationIds, parameters, request bodies,
 * responses with their descriptions and examples, summaries, descriptions,
 * tags, security, and the shared component schemas by reference.
 */
import swagger from '@fastify/swagger'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Db } from 'mongodb'
import t from 'tap'
import orgPhoneNumbers from '../../plugins/phone-numbers/index.js'
import { SCHEMA_ID_PREFIX } from '../../plugins/phone-numbers/host-openapi.js'
import { openapiDocument } from '../../schemas/generated/openapi-document.js'
import { createTestDatabase } from '../helper-database.js'
import { createSigner, TEST_SECRET } from '../helper.js'

type Json = Record<string, unknown>

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace']
/** Served by the standalone server only, never by the plugin. */
const STANDALONE_ONLY = ['get_health', 'get_openapi_json', 'get_openapi_yaml']
const SCHEMA_REF = '#/components/schemas/'

const contract = JSON.parse(JSON.stringify(openapiDocument)) as Json
const isJson = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)
const member = (node: unknown, key: string): Json => {
  const value = isJson(node) ? node[key] : undefined
  return isJson(value) ? value : {}
}

async function buildHost (db: Db, register: (host: FastifyInstance) => Promise<void> = async (host) => {
  await host.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET } })
}): Promise<FastifyInstance> {
  const host = Fastify({ logger: false })
  // The README's order: swagger first, so it sees the plugin's routes and schemas.
  await host.register(swagger, { openapi: { info: { title: 'Host API', version: '1.0.0' } } })
  await register(host)
  await host.ready()
  return host
}

/** A deep copy where `fix` rewrites every `$ref` string. */
function mapRefs (node: unknown, fix: (ref: string) => string): unknown {
  if (Array.isArray(node)) return node.map((item) => mapRefs(item, fix))
  if (!isJson(node)) return node
  return Object.fromEntries(Object.entries(node).map(([key, value]) =>
    [key, key === '$ref' && typeof value === 'string' ? fix(value) : mapRefs(value, fix)]))
}

/**
 * The host's document in the contract's spelling. Each step is a difference
 * of form only:
 * - @fastify/swagger's default ref resolver names a shared schema `def-N` and
 *   records its `$id` as `title`; the `$id` is the contract's component name
 *   behind the plugin's prefix. So `def-N` is renamed back to that name, and
 *   that `title` (which the contract does not write) is dropped.
 * - Only the plugin's components are kept: the host may have schemas of its own.
 */
function normalizeHostDocument (document: Json): { paths: Json, schemas: Json } {
  const names = new Map<string, string>()
  const schemas: Json = {}
  for (const [defName, schema] of Object.entries(member(member(document, 'components'), 'schemas'))) {
    const title = isJson(schema) ? schema['title'] : undefined
    if (typeof title !== 'string' || !title.startsWith(SCHEMA_ID_PREFIX)) continue
    const name = title.slice(SCHEMA_ID_PREFIX.length)
    names.set(`${SCHEMA_REF}${defName}`, `${SCHEMA_REF}${name}`)
    const { title: _title, ...rest } = schema as Json
    schemas[name] = rest
  }
  const fix = (ref: string): string => names.get(ref) ?? ref
  return { paths: mapRefs(member(document, 'paths'), fix) as Json, schemas: mapRefs(schemas, fix) as Json }
}

/** A `#/components/<section>/*` ref replaced by the component it names. */
function resolveComponent (node: unknown, section: string): unknown {
  const ref = isJson(node) ? node['$ref'] : undefined
  return typeof ref === 'string' && ref.startsWith(`#/components/${section}/`) ? member(member(contract, 'components'), section)[ref.split('/').at(-1) ?? ''] : node
}

function withoutExtensions (node: unknown): Json {
  return Object.fromEntries(Object.entries(isJson(node) ? node : {}).filter(([key]) => !key.startsWith('x-')))
}

/**
 * One operation in a comparable form:
 * - a `#/components/responses/*` ref is replaced by that response, since a
 *   Fastify route can only carry responses inline (same description and
 *   content); the response's `x-` extensions are dropped, because
 *   @fastify/swagger builds a response object from description, headers and
 *   content only; so are the refs to `#/components/parameters/*` and
 *   `#/components/headers/*`, and their `x-` extensions;
 * - parameters are keyed by location and name: OpenAPI identifies them so,
 *   their order means nothing (@fastify/swagger lists query before path).
 */
function comparableOperation (operation: Json): Json {
  const responses: Json = {}
  for (const [status, value] of Object.entries(member(operation, 'responses'))) {
    const response = withoutExtensions(resolveComponent(value, 'responses'))
    const headers = member(response, 'headers')
    responses[status] = Object.keys(headers).length === 0
      ? response
      : { ...response, headers: Object.fromEntries(Object.entries(headers).map(([name, header]) => [name, withoutExtensions(resolveComponent(header, 'headers'))])) }
  }
  const parameters = (Array.isArray(operation['parameters']) ? operation['parameters'] : []).map((parameter) => withoutExtensions(resolveComponent(parameter, 'parameters')))
  return {
    ...operation,
    responses,
    parameters: Object.fromEntries(parameters.map((parameter) => [`${String(parameter['in'])} ${String(parameter['name'])}`, parameter]))
  }
}

/** The contract's operations served by the plugin, keyed `METHOD path`. */
function contractOperations (): Map<string, Json> {
  const found = new Map<string, Json>()
  for (const [path, item] of Object.entries(member(contract, 'paths'))) {
    for (const method of HTTP_METHODS) {
      const operation = member(item, method)
      if (typeof operation['operationId'] === 'string' && !STANDALONE_ONLY.includes(operation['operationId'])) found.set(`${method.toUpperCase()} ${path}`, operation)
    }
  }
  return found
}

/** The component schemas the operations refer to, directly or through other components. */
function referencedComponents (node: unknown, found = new Set<string>()): Set<string> {
  if (Array.isArray(node)) {
    for (const item of node) referencedComponents(item, found)
  } else if (isJson(node)) {
    const ref = node['$ref']
    if (typeof ref === 'string' && ref.startsWith(SCHEMA_REF) && !found.has(ref.slice(SCHEMA_REF.length))) {
      found.add(ref.slice(SCHEMA_REF.length))
      referencedComponents(member(member(contract, 'components'), 'schemas')[ref.slice(SCHEMA_REF.length)], found)
    }
    for (const value of Object.values(node)) referencedComponents(value, found)
  }
  return found
}

/** Every difference between the host's document and the contract, for the plugin's operations under `prefix` (ids behind `idPrefix`). */
function differences (document: Json, prefix = '', idPrefix = ''): string[] {
  const { paths, schemas } = normalizeHostDocument(document)
  const problems: string[] = []
  const expected = contractOperations()
  for (const [key, operation] of expected) {
    const [method = '', path = ''] = key.split(' ')
    const found = member(member(paths, `${prefix}${path}`), method.toLowerCase())
    const id = found['operationId']
    const actual = typeof id === 'string' && id.startsWith(idPrefix) ? { ...found, operationId: id.slice(idPrefix.length) } : found
    if (JSON.stringify(sorted(comparableOperation(actual))) !== JSON.stringify(sorted(comparableOperation(operation)))) {
      problems.push(`${key}: ${JSON.stringify(diffKeys(comparableOperation(actual), comparableOperation(operation)))}`)
    }
  }
  const names = referencedComponents([...expected.values()])
  const contractSchemas = member(member(contract, 'components'), 'schemas')
  for (const name of names) {
    if (JSON.stringify(sorted(schemas[name])) !== JSON.stringify(sorted(contractSchemas[name]))) problems.push(`components.schemas.${name} differs`)
  }
  const extra = Object.keys(schemas).filter((name) => !names.has(name))
  if (extra.length > 0) problems.push(`components the operations do not use: ${extra.join(', ')}`)
  return problems
}

/** Keys sorted at every level, so that key order does not count. */
function sorted (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sorted)
  if (!isJson(value)) return value
  return Object.fromEntries(Object.keys(value).sort().map((key) => [key, sorted(value[key])]))
}

/** The top-level (and `responses.<status>`) keys whose values differ: a readable failure. */
function diffKeys (actual: Json, expected: Json): string[] {
  const keys = new Set([...Object.keys(actual), ...Object.keys(expected)])
  return [...keys].flatMap((key) => {
    if (JSON.stringify(sorted(actual[key])) === JSON.stringify(sorted(expected[key]))) return []
    if (key !== 'responses') return [key]
    return diffKeys(member(actual, key), member(expected, key)).map((status) => `responses.${status}`)
  })
}

t.test('the host document matches openapi.yaml for every plugin operation', async (t) => {
  const { db } = await createTestDatabase(t)
  const host = await buildHost(db)
  t.teardown(() => host.close())
  const document = host.swagger() as unknown as Json

  t.same(differences(document), [], 'operations and their component schemas as in the contract')
  t.equal(contractOperations().size, 7, 'the seven plugin operations were compared')
  t.same(member(member(document, 'components'), 'securitySchemes'), member(member(contract, 'components'), 'securitySchemes'),
    'bearerAuth is declared although the host did not declare it')
  const routing = (Array.isArray(document['tags']) ? document['tags'] : []).find((tag: Json) => tag['name'] === 'Routing') as Json | undefined
  t.equal(routing?.['description'], 'Inbound routing lookups, for telephony gateways.', 'the contract tag descriptions come along')

  const text = JSON.stringify(document)
  t.equal(text.match(/"createdAt":\{"type"/g)?.length, 1, 'PhoneNumberAssignment is written once, not inlined per use')
  // Once in OrganizationErrorResponse, once in OrgBulkAssignResult (an item's own error texts).
  t.equal(text.match(/"details":\{"type"/g)?.length, 2, 'so is the error schema')
  t.notOk(text.includes('Default Response'), 'every response has its own description')
})

t.test('the comparison catches a dropped summary, response description, tag, security or shared schema', async (t) => {
  const { db } = await createTestDatabase(t)
  const host = await buildHost(db)
  t.teardown(() => host.close())
  const original = host.swagger() as unknown as Json
  const path = '/api/organizations/{organizationId}/phone-numbers'
  const mutations: Array<[string, (document: Json) => void]> = [
    ['summary', (document) => { delete member(member(member(document, 'paths'), path), 'post')['summary'] }],
    ['response description', (document) => { member(member(member(member(member(document, 'paths'), path), 'delete'), 'responses'), '404')['description'] = 'Default Response' }],
    ['tags', (document) => { delete member(member(member(document, 'paths'), path), 'get')['tags'] }],
    ['security', (document) => { delete member(member(member(document, 'paths'), path), 'get')['security'] }],
    ['component property', (document) => {
      const schema = Object.values(member(member(document, 'components'), 'schemas')).find((value) => isJson(value) && value['title'] === `${SCHEMA_ID_PREFIX}PhoneNumberAssignment`)
      delete member(schema, 'properties')['label']
    }],
    ['shared schema reference', (document) => {
      member(member(member(member(member(member(member(document, 'paths'), path), 'post'), 'requestBody'), 'content'), 'application/json'), 'schema')['$ref'] = undefined
    }]
  ]
  for (const [what, mutate] of mutations) {
    const copy = JSON.parse(JSON.stringify(original)) as Json
    mutate(copy)
    t.ok(differences(copy).length > 0, `a dropped ${what} is reported`)
  }
})

t.test('two registrations in sibling scopes, beside host schemas and a host bearerAuth', async (t) => {
  const { db } = await createTestDatabase(t)
  const hostScheme = { type: 'http' as const, scheme: 'bearer', description: 'The host\'s own tokens' }
  const host = Fastify({ logger: false })
  await host.register(swagger, { openapi: { info: { title: 'Host API', version: '1.0.0' }, components: { securitySchemes: { bearerAuth: hostScheme } } } })
  // The host's own shared schema, under a name the contract also uses.
  host.addSchema({ $id: 'PhoneNumberAssignment', type: 'object', properties: { hostField: { type: 'string' } } })
  host.get('/host/thing', { schema: { response: { 200: { $ref: 'PhoneNumberAssignment#' } } } }, async () => ({ hostField: 'kept' }))
  await host.register(async (v1) => { await v1.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET }, prefix: '/v1', createIndexes: false }) })
  await host.register(async (v2) => { await v2.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET }, prefix: '/v2' }) })
  await host.ready()
  t.teardown(() => host.close())
  const document = host.swagger() as unknown as Json

  t.same(differences(document, '/v1'), [], 'the /v1 operations match the contract')
  t.same(differences(document, '/v2'), [], 'the /v2 operations match the contract')
  t.same(member(member(member(document, 'components'), 'securitySchemes'), 'bearerAuth'), hostScheme, 'the host\'s bearerAuth is kept')
  const hostSchemas = Object.values(member(member(document, 'components'), 'schemas')).filter((schema) => isJson(schema) && schema['title'] === 'PhoneNumberAssignment')
  t.same(hostSchemas.map((schema) => member(schema, 'properties')), [{ hostField: { type: 'string' } }], 'the host\'s same-named schema is kept, beside the plugin\'s')
  t.same((await host.inject({ method: 'GET', url: '/host/thing' })).json(), { hostField: 'kept' }, 'the host route still serialises with its own schema')

  // Validation is untouched: the same 400 `{ error, details }` in both scopes.
  const signer = await createSigner()
  t.teardown(() => signer.close())
  const authorization = `Bearer ${signer.sign({ sub: '5f7b1c2e8a1d4e0012c3b4a9', role: 'SUPERADMIN' })}`
  for (const prefix of ['/v1', '/v2']) {
    const response = await host.inject({
      method: 'POST',
      url: `${prefix}/api/organizations/5f7b1c2e8a1d4e0012c3b4a5/phone-numbers`,
      headers: { authorization },
      payload: { targetUserId: '5f7b1c2e8a1d4e0012c3b4a6', provider: 'twilio', phoneNumber: '+14165550102', isDefault: 'true' }
    })
    t.equal(response.statusCode, 400, `${prefix}: a string for a boolean is refused (no body coercion)`)
    t.same(response.json(), { error: 'Validation error', details: 'body/isDefault must be boolean' }, `${prefix}: the same { error, details }`)
  }
})

/** Every operationId of a document, in document order. */
function operationIds (document: Json): string[] {
  return Object.values(member(document, 'paths')).flatMap((item) => HTTP_METHODS.map((method) => member(item, method)['operationId']))
    .filter((id): id is string => typeof id === 'string')
}

t.test('two registrations in one document, each with its own operationIdPrefix: every operationId once, the served contract unchanged', async (t) => {
  const { db } = await createTestDatabase(t)
  const host = await buildHost(db, async (host) => {
    await host.register(async (v1) => { await v1.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET }, prefix: '/v1', operationIdPrefix: 'v1_', serveOpenapi: true }) })
    await host.register(async (v2) => { await v2.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET }, prefix: '/v2', operationIdPrefix: 'v2_', createIndexes: false }) })
  })
  t.teardown(() => host.close())
  const document = host.swagger() as unknown as Json
  const ids = operationIds(document).filter((id) => !STANDALONE_ONLY.some((own) => id.endsWith(own)))
  // The plugin's operations (without the served document's own), once behind each prefix.
  const own = ids.length / 2
  t.equal(ids.length, 14, 'fourteen operations: seven in each registration')
  t.equal(new Set(ids).size, ids.length, 'every operationId distinct')
  t.ok(ids.filter((id) => id.startsWith('v1_')).length === own && ids.filter((id) => id.startsWith('v2_')).length === own, 'seven behind each prefix')
  t.same(differences(document, '/v1', 'v1_'), [], 'the /v1 operations match the contract but for the prefix')
  t.same(differences(document, '/v2', 'v2_'), [], 'the /v2 operations match the contract but for the prefix')

  // The served document is the contract as written: no prefix there.
  const served = (await host.inject({ method: 'GET', url: '/v1/openapi.json' })).json<Json>()
  t.same(served, contract, '/v1/openapi.json is the contract exactly')
  t.ok(operationIds(served).includes('post_organizations_phone_numbers'), 'with its own operationIds')
})

t.test('operationIdPrefix is checked at registration', async (t) => {
  const { db } = await createTestDatabase(t)
  const host = Fastify({ logger: false })
  t.teardown(() => host.close())
  await t.rejects(async () => {
    await host.register(orgPhoneNumbers, { db, auth: { secret: TEST_SECRET }, operationIdPrefix: 'v 2' })
  }, /operationIdPrefix must be letters, digits/)
})
